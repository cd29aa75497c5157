/**
 * bench/results/chart.svg: main-thread CPU per recipient against N (log-log),
 * for "everyone" and "union of 100 rooms" at K=10, both adapters. Hand-written
 * SVG, no dependency.
 */
import type { AdapterKind, TaskName } from "./protocol";
import type { SizeResult } from "./report";

export interface ChartPoint {
  readonly task: TaskName;
  readonly label: string;
  readonly adapter: AdapterKind;
  readonly n: number;
  readonly k: number;
  readonly recipientsPerOp: number;
  /** Main-thread CPU per op divided by recipients per op, ns. */
  readonly nsPerRecipient: number;
}

const CHART_TASKS: readonly TaskName[] = ["bcast-all", "bcast-union"];
const CHART_K = 10;

export function chartPoints(sizes: readonly SizeResult[]): ChartPoint[] {
  const points: ChartPoint[] = [];
  for (const size of sizes) {
    if (size.k !== CHART_K) continue;
    for (const task of size.tasks) {
      if (!CHART_TASKS.includes(task.name)) continue;
      for (const adapter of ["in-memory", "sharded"] as const) {
        const a = task.adapters[adapter];
        const ns = a.mainCpuNsPerUnit / task.recipientsPerOp;
        if (!Number.isFinite(ns) || ns <= 0) continue;
        points.push({ task: task.name, label: task.label, adapter, n: size.n, k: size.k, recipientsPerOp: task.recipientsPerOp, nsPerRecipient: ns });
      }
    }
  }
  return points.sort((a, b) => a.n - b.n);
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function fmtN(n: number): string {
  return n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n);
}

function fmtNs(ns: number): string {
  const trim = (x: string) => x.replace(/\.0$/, "");
  return ns >= 1000 ? `${trim((ns / 1000).toFixed(ns >= 10_000 ? 0 : 1))} µs` : `${trim(ns >= 10 ? ns.toFixed(0) : ns.toFixed(1))} ns`;
}

export function chartSvg(points: readonly ChartPoint[], subtitle: string): string {
  const W = 760;
  const H = 460;
  const m = { left: 80, right: 200, top: 64, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Main-thread CPU per recipient against N (K=${CHART_K}, log-log)</text>`,
    `<text x="${W / 2}" y="42" text-anchor="middle" fill="#555">${esc(subtitle)}</text>`,
  );
  if (points.length === 0) {
    out.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no K=${CHART_K} data for these workloads in this run</text></svg>`);
    return out.join("\n") + "\n";
  }
  const ns = points.map((p) => p.n);
  const ys = points.map((p) => p.nsPerRecipient);
  let x0 = Math.log10(Math.min(...ns));
  let x1 = Math.log10(Math.max(...ns));
  if (x1 - x0 < 1e-9) {
    x0 -= 0.5;
    x1 += 0.5;
  } else {
    x0 -= 0.15;
    x1 += 0.15;
  }
  const y0 = Math.floor(Math.log10(Math.min(...ys)));
  const y1 = Math.ceil(Math.log10(Math.max(...ys)));
  const yTop = y1 === y0 ? y0 + 1 : y1;
  const X = (n: number) => m.left + ((Math.log10(n) - x0) / (x1 - x0)) * pw;
  const Y = (v: number) => m.top + ph - ((Math.log10(v) - y0) / (yTop - y0)) * ph;

  // Grid and axes.
  out.push(`<g stroke="#ddd">`);
  for (let e = y0; e <= yTop; e++) {
    for (const f of [1, 2, 5]) {
      const v = f * 10 ** e;
      if (Math.log10(v) > yTop + 1e-9) continue;
      out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}"${f === 1 ? "" : ' stroke-dasharray="2,3"'}/>`);
    }
  }
  const xs = [...new Set(ns)].sort((a, b) => a - b);
  for (const n of xs) out.push(`<line x1="${X(n).toFixed(1)}" x2="${X(n).toFixed(1)}" y1="${m.top}" y2="${m.top + ph}"/>`);
  out.push(`</g>`);
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  for (let e = y0; e <= yTop; e++) {
    out.push(`<text x="${m.left - 6}" y="${(Y(10 ** e) + 4).toFixed(1)}" text-anchor="end">${fmtNs(10 ** e)}</text>`);
  }
  for (const n of xs) out.push(`<text x="${X(n).toFixed(1)}" y="${m.top + ph + 18}" text-anchor="middle">${fmtN(n)}</text>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 14}" text-anchor="middle">N (sockets)</text>`);
  out.push(
    `<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">main-thread CPU per recipient</text>`,
  );

  // Series: colour by workload, dash by adapter.
  const colors: Record<string, string> = { "bcast-all": "#1f77b4", "bcast-union": "#d62728" };
  const series: { key: string; label: string; color: string; dash: string; pts: ChartPoint[] }[] = [];
  for (const task of CHART_TASKS) {
    for (const adapter of ["in-memory", "sharded"] as const) {
      const pts = points.filter((p) => p.task === task && p.adapter === adapter);
      if (pts.length === 0) continue;
      series.push({
        key: `${task}-${adapter}`,
        label: `${pts[0].label}, ${adapter}`,
        color: colors[task] ?? "#333",
        dash: adapter === "sharded" ? "" : "6,4",
        pts,
      });
    }
  }
  for (const s of series) {
    const d = s.pts.map((p, i) => `${i === 0 ? "M" : "L"}${X(p.n).toFixed(1)},${Y(p.nsPerRecipient).toFixed(1)}`).join(" ");
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`);
    for (const p of s.pts) {
      const cx = X(p.n).toFixed(1);
      const cy = Y(p.nsPerRecipient).toFixed(1);
      const title = `${esc(s.label)}: N=${fmtN(p.n)}, ${p.recipientsPerOp} recipients, ${fmtNs(p.nsPerRecipient)} per recipient`;
      out.push(
        s.dash
          ? `<rect x="${Number(cx) - 4}" y="${Number(cy) - 4}" width="8" height="8" fill="#fff" stroke="${s.color}" stroke-width="2"><title>${title}</title></rect>`
          : `<circle cx="${cx}" cy="${cy}" r="4" fill="${s.color}"><title>${title}</title></circle>`,
      );
      out.push(`<text x="${Number(cx) + 7}" y="${Number(cy) - 6}" font-size="10" fill="${s.color}">${fmtNs(p.nsPerRecipient)}</text>`);
    }
  }
  // Legend.
  let ly = m.top + 10;
  for (const s of series) {
    const lx = m.left + pw + 14;
    out.push(`<line x1="${lx}" x2="${lx + 28}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`);
    const [task, adapter] = [s.label.slice(0, s.label.lastIndexOf(",")), s.label.slice(s.label.lastIndexOf(",") + 2)];
    out.push(`<text x="${lx + 34}" y="${ly + 4}">${esc(task)}</text>`);
    out.push(`<text x="${lx + 34}" y="${ly + 18}" fill="#555">${esc(adapter)}</text>`);
    ly += 40;
  }
  out.push(`<text x="${m.left + pw + 14}" y="${ly + 6}" font-size="10" fill="#555">dashed: in-memory</text>`);
  out.push(`<text x="${m.left + pw + 14}" y="${ly + 20}" font-size="10" fill="#555">solid: sharded</text>`);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
