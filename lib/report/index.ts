/** HTML reports: charts (Vega-Lite rendered offline to SVG) and the report writer. */
export {
  renderSvg,
  lineChart,
  barChartWithErrors,
  scatterLine,
  heatmap,
  CHART_FONT,
} from './charts';
export type {
  VegaLiteSpec,
  RenderSvgOptions,
  LineChartOptions,
  MeanSd,
  BarDatum,
  BarChartOptions,
  ScatterLineDatum,
  ScatterLineOptions,
  HeatmapOptions,
} from './charts';
export { renderReport, writeReport, escapeHtml, formatNumber, formatMeanSd, tabsightVersion } from './html';
export type { Report, Section, ReportTable, ReportImage, ReportLink, Cell } from './html';
