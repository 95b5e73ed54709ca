/** ONNX export of the encoders and an onnxruntime runner. See docs/export.md. */
export {
  activationQuantParams,
  exportImageEncoder,
  exportTabularEncoder,
  imageEncoderMeta,
  tabsightVersion,
  type HeadOptions,
  type ImageEncoderMeta,
  type ImageExportOptions,
  type Int8Quantization,
  quantizeWeightPerChannel,
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
export { calibrateImageEncoder, cpuVnni, measureAgreement, type Agreement, type CalibrateOptions, type CalibrationResult } from './quantize';
