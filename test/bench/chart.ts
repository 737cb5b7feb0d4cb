// The comparison as an SVG chart, written by hand (no dependency): panels of grouped bars (TCP
// Gbit/s, UDP kpps, latency p50 and p99 in ms), one bar per case, a thin line over each bar for the range
// of its runs. The linear scale of a panel is set by the tunnels and GSRA; the offload-on plain
// path, far above, is drawn clipped at the top with its value written on it. Pure
// (test/bench/chart.test.ts).
import { find, type CaseName, type Figure, type FigureKey } from './figures.ts';
import { fmt } from './summary.ts';

export const CHART_CASES: { c: CaseName; label: string; color: string }[] = [
  { c: 'plain', label: 'plain (offloads on)', color: '#9e9e9e' },
  { c: 'plain-nooffload', label: 'plain, per-segment ceiling', color: '#616161' },
  { c: 'wireguard-go', label: 'wireguard-go', color: '#88419d' },
  { c: 'openvpn', label: 'OpenVPN 2.6', color: '#e6550d' },
  { c: 'gsra', label: 'GSRA', color: '#2171b5' },
  { c: 'gsra-compat', label: 'GSRA compat', color: '#6baed6' },
];

interface Group {
  label: string;
  key: Omit<FigureKey, 'case'>;
}
interface Panel {
  title: string;
  unit: string;
  scale: number;
  groups: Group[];
  /** Cases that do not set the panel's scale (drawn clipped when above it). */
  clip: CaseName[];
}

const PANELS: Panel[] = [
  {
    title: 'TCP throughput (iperf3), Gbit/s, higher is better',
    unit: 'Gbit/s',
    scale: 1,
    clip: ['plain'],
    groups: [1, 4].flatMap((streams) =>
      (['en-in', 'in-en'] as const).map((dir) => ({
        label: `${dir === 'en-in' ? 'up' : 'down'} x${streams}`,
        key: { metric: 'tcp_gbps', dir, streams },
      })),
    ),
  },
  {
    title: 'UDP datagrams received, kpps, higher is better',
    unit: 'kpps',
    scale: 1000,
    clip: [],
    groups: [64, 1400].flatMap((size) =>
      (['en-in', 'in-en'] as const).map((dir) => ({
        label: `${dir === 'en-in' ? 'up' : 'down'} ${size} B`,
        key: { metric: 'udp_pps', dir, size },
      })),
    ),
  },
  ...(['p50', 'p99'] as const).map((p) => ({
    title: `Round-trip latency ${p}, ms, lower is better`,
    unit: 'ms',
    scale: 1,
    clip: [] as CaseName[],
    groups: [
      { label: `TCP request/response ${p}`, key: { metric: `rr_${p}_ms` } },
      { label: `ping ${p}`, key: { metric: `ping_${p}_ms` } },
    ],
  })),
];

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A "nice" axis maximum (1, 2 or 5 times a power of ten) at or above x. */
export function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

const W = 960;
const PANEL_H = 250;
const LEFT = 60;
const TOP = 70;

export function chartSvg(figs: readonly Figure[], title: string): string {
  const cases = CHART_CASES.filter(({ c }) => figs.some((f) => f.case === c && f.value !== null));
  const panels = PANELS.filter((p) =>
    p.groups.some((g) =>
      cases.some(({ c }) => find(figs, { ...g.key, case: c } as FigureKey)?.value != null),
    ),
  );
  const H = TOP + panels.length * (PANEL_H + 40) + 10;
  const o: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${LEFT}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  let lx = LEFT;
  cases.forEach(({ label, color }) => {
    const x = lx;
    lx += 16 + label.length * 7 + 18;
    o.push(
      `<rect x="${x}" y="36" width="12" height="12" fill="${color}"/>`,
      `<text x="${x + 16}" y="46">${esc(label)}</text>`,
    );
  });
  panels.forEach((p, pi) => {
    const y0 = TOP + pi * (PANEL_H + 40) + 20;
    const plotH = PANEL_H - 50;
    const base = y0 + plotH;
    const val = (c: CaseName, g: Group) => find(figs, { ...g.key, case: c } as FigureKey);
    const scaleOf = cases
      .filter(({ c }) => !p.clip.includes(c) || cases.every((x) => p.clip.includes(x.c)))
      .flatMap(({ c }) => p.groups.map((g) => (val(c, g)?.max ?? val(c, g)?.value ?? 0) / p.scale));
    const top = niceMax(Math.max(0, ...scaleOf) * 1.1);
    const y = (v: number) => base - (Math.min(v, top) / top) * plotH;
    o.push(`<text x="${LEFT}" y="${y0 - 6}" font-weight="bold">${esc(p.title)}</text>`);
    for (let k = 0; k <= 4; k++) {
      const v = (top * k) / 4;
      o.push(
        `<line x1="${LEFT}" x2="${W - 10}" y1="${y(v)}" y2="${y(v)}" stroke="#e0e0e0"/>`,
        `<text x="${LEFT - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${fmt(v)}</text>`,
      );
    }
    const gw = (W - 10 - LEFT) / p.groups.length;
    const bw = Math.min(34, (gw - 20) / Math.max(1, cases.length));
    p.groups.forEach((g, gi) => {
      const gx = LEFT + gi * gw + (gw - bw * cases.length) / 2;
      cases.forEach(({ c, color }, ci) => {
        const f = val(c, g);
        if (f?.value == null) return;
        const v = f.value / p.scale;
        const x = gx + ci * bw;
        const clipped = v > top;
        o.push(
          `<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(base - y(v)).toFixed(1)}" fill="${color}"><title>${esc(`${c} ${g.label}: ${fmt(v)} ${p.unit}`)}</title></rect>`,
        );
        if (f.min !== undefined && f.max !== undefined && !clipped) {
          const cx = (x + (bw - 2) / 2).toFixed(1);
          o.push(
            `<line x1="${cx}" x2="${cx}" y1="${y(f.min / p.scale).toFixed(1)}" y2="${y(f.max / p.scale).toFixed(1)}" stroke="#000" stroke-width="1.5"/>`,
          );
        }
        const label = clipped ? `${fmt(v)}↑` : fmt(v);
        o.push(
          // A clipped bar's value goes inside its top, in white: above it is the panel's title.
          `<text x="${(x + (bw - 2) / 2).toFixed(1)}" y="${(clipped ? y(v) + 14 : y(v) - 4).toFixed(1)}" text-anchor="middle" font-size="10"${clipped ? ' font-weight="bold" fill="#ffffff"' : ''}>${esc(label)}</text>`,
        );
      });
      o.push(
        `<text x="${(LEFT + gi * gw + gw / 2).toFixed(1)}" y="${base + 16}" text-anchor="middle">${esc(g.label)}</text>`,
      );
    });
    o.push(`<line x1="${LEFT}" x2="${W - 10}" y1="${base}" y2="${base}" stroke="#000"/>`);
  });
  o.push('</svg>');
  return o.join('\n') + '\n';
}
