// A uPlot chart that follows its container's width and the colour scheme.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';

export interface Series {
  label: string;
  color: string;
  /** Bars instead of a line (counts). */
  bars?: boolean;
  /** Right-hand axis (e.g. error rate beside a count). */
  right?: boolean;
  dash?: boolean;
  /** Points only (a scatter of single events). */
  points?: boolean;
}

interface Props {
  title: string;
  /** x in unix seconds, then one array per series (null for no data). */
  data: [number[], ...(number | null)[][]];
  series: Series[];
  height?: number;
  yFormat?: (v: number) => string;
  rightFormat?: (v: number) => string;
  /** Horizontal threshold line (the SLA). */
  threshold?: number | null;
}

const DARK = '(prefers-color-scheme: dark)';

/** Whether the OS theme is dark, following it when it changes while the page is open. */
function useDark(): boolean {
  const [dark, setDark] = useState(() => matchMedia(DARK).matches);
  useEffect(() => {
    const q = matchMedia(DARK);
    const on = () => setDark(q.matches);
    q.addEventListener('change', on);
    return () => q.removeEventListener('change', on);
  }, []);
  return dark;
}

export function Chart({ title, data, series, height = 160, yFormat, rightFormat, threshold }: Props) {
  const el = useRef<HTMLDivElement>(null);
  const dark = useDark();
  useEffect(() => {
    const box = el.current;
    if (!box) return;
    const axisColor = dark ? '#9aa4b2' : '#4b5563';
    const grid = { stroke: dark ? '#2a3140' : '#e5e7eb', width: 1 };
    const fmt = (f?: (v: number) => string) => (_u: uPlot, vals: number[]) =>
      vals.map((v) => (v === null ? '' : f ? f(v) : String(v)));
    const hasRight = series.some((s) => s.right);
    const opts: uPlot.Options = {
      width: Math.max(box.clientWidth, 200),
      height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        r: { range: [0, 1] },
      },
      axes: [
        { stroke: axisColor, grid },
        { stroke: axisColor, grid, values: fmt(yFormat), size: 60 },
        ...(hasRight
          ? [{ side: 1, scale: 'r', stroke: axisColor, grid: { show: false }, values: fmt(rightFormat), size: 50 }]
          : []),
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          fill: s.bars ? `${s.color}55` : undefined,
          width: s.bars ? 0 : 1.5,
          dash: s.dash ? [4, 4] : undefined,
          scale: s.right ? 'r' : 'y',
          spanGaps: false,
          paths: s.bars ? uPlot.paths.bars?.({ size: [0.8, 40] }) : s.points ? () => null : undefined,
          points: s.points ? { show: true, size: 5, fill: s.color } : undefined,
          value: (_u: uPlot, v: number | null) =>
            v === null ? '–' : s.right ? (rightFormat?.(v) ?? String(v)) : (yFormat?.(v) ?? String(v)),
        })),
      ],
      hooks:
        threshold != null
          ? {
              draw: [
                (u: uPlot) => {
                  const y = u.valToPos(threshold, 'y', true);
                  if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) return;
                  const ctx = u.ctx;
                  ctx.save();
                  ctx.strokeStyle = '#dc2626';
                  ctx.setLineDash([6, 4]);
                  ctx.beginPath();
                  ctx.moveTo(u.bbox.left, y);
                  ctx.lineTo(u.bbox.left + u.bbox.width, y);
                  ctx.stroke();
                  ctx.restore();
                },
              ],
            }
          : {},
    };
    const plot = new uPlot(opts, data as uPlot.AlignedData, box);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(box.clientWidth, 200), height }));
    ro.observe(box);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [data, series, height, threshold, dark]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={el} role="img" aria-label={title} />
    </figure>
  );
}
