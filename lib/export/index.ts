/** ONNX export of the encoders and an onnxruntime runner. See docs/export.md. */
export {
  exportImageEncoder,
  exportTabularEncoder,
  imageEncoderMeta,
  tabsightVersion,
  type HeadOptions,
  type ImageEncoderMeta,
  type ImageExportOptions,
  type ResNetArch,
  type TabularEncoderMeta,
} from './resnet-onnx';
export { BN_EPS, foldBatchNorm, IR_VERSION, OPSET, type BatchNormParams, type WeightMap } from './onnx-builder';
export { OrtImageEncoder, type EmbedOptions, type EmbedResult, type OrtLoadOptions } from './ort';
export * from './run-export';
export * from './heads';
export * from './images';
export * from './backend';
export * from './verify';
