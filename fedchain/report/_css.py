"""The report's stylesheet, inlined into every report (nothing is fetched)."""

__all__ = ["CSS"]

CSS = """
:root { --ink:#0f172a; --muted:#64748b; --line:#e2e8f0; --bg:#f1f5f9; --card:#fff;
  --blue:#2563eb; --green:#15803d; --green-bg:#dcfce7; --red:#b91c1c; --red-bg:#fee2e2;
  --amber:#92400e; --amber-bg:#fef3c7; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 14px/1.5 "Inter", "Segoe UI", "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 28px 28px 48px; }
h1 { font-size: 28px; line-height: 1.2; margin: 2px 0 6px; letter-spacing: -0.01em; }
h2 { font-size: 17px; margin: 0 0 12px; }
code { font: 12.5px/1.4 "JetBrains Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  background:#f1f5f9; padding:1px 5px; border-radius:4px; word-break: break-all; }
.hero { display:flex; justify-content:space-between; align-items:center; gap:24px;
  background: linear-gradient(120deg, #0f172a, #1e3a8a); color:#fff; border-radius:14px;
  padding: 26px 30px; }
.hero .eyebrow { margin:0; text-transform:uppercase; letter-spacing:.08em; font-size:12px;
  color:#93c5fd; font-weight:600; }
.hero .subtitle { margin:0; color:#cbd5e1; }
.badge { display:flex; flex-direction:column; align-items:center; gap:2px; min-width:170px;
  padding: 12px 20px; border-radius: 12px; font-weight:700; font-size:17px; text-align:center; }
.badge small { font-weight:500; font-size:12px; opacity:.85; }
.badge .dot { width:10px; height:10px; border-radius:50%; background: currentColor; }
.badge.ok { background: var(--green-bg); color: var(--green); }
.badge.fail { background: var(--red-bg); color: var(--red); }
.badge.warn { background: var(--amber-bg); color: var(--amber); }
.badge.none { background: #e2e8f0; color: #334155; }
.cards { display:grid; grid-template-columns: repeat(5, 1fr); gap:14px; margin: 18px 0; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px;
  padding:14px 16px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase;
  letter-spacing:.06em; }
.card .value { font-size:24px; font-weight:700; margin-top:2px;
  font-variant-numeric: tabular-nums; }
.card .value .unit { font-size:14px; font-weight:600; color:var(--muted); }
.card .sub { color:var(--muted); font-size:12.5px; }
.panel { background:var(--card); border:1px solid var(--line); border-radius:12px;
  padding: 18px 20px; margin-bottom: 18px; }
.facts { display:grid; grid-template-columns: 150px 1fr; gap: 6px 16px; margin:0; }
.facts dt { color:var(--muted); }
.facts dd { margin:0; }
.spec { display:grid; grid-template-columns: repeat(3, 1fr); gap: 8px 20px; margin:0; }
.spec div { border-bottom:1px solid var(--line); padding: 4px 0; min-width:0; }
.spec dt { color:var(--muted); font-size:12px; }
.spec dd { margin:0; word-break: break-all; font-variant-numeric: tabular-nums; }
.note { color:var(--muted); margin: -6px 0 12px; }
.plots { display:grid; grid-template-columns: 1fr 1fr; gap: 16px; }
figure { margin:0; border:1px solid var(--line); border-radius:10px; padding:10px; }
figcaption { font-weight:600; margin-bottom:6px; }
figcaption small { display:block; font-weight:400; color:var(--muted); font-size:12.5px; }
figure img { width:100%; height:auto; display:block; }
.empty { display:flex; flex-direction:column; align-items:center; justify-content:center;
  min-height: 240px; background: #f8fafc; border-radius: 8px; color: var(--muted); gap:4px; }
.empty strong { color: var(--ink); font-size: 16px; }
table { width:100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th.num { text-align:right; }
th { text-align:left; font-size:12px; text-transform:uppercase; letter-spacing:.05em;
  color:var(--muted); border-bottom:2px solid var(--line); padding: 8px 10px; }
td { border-bottom:1px solid var(--line); padding: 8px 10px; vertical-align: top; }
tbody tr:nth-child(even) { background:#f8fafc; }
table.rounds tbody tr { background: none; }
table.rounds tbody:nth-of-type(even) { background:#f8fafc; }
tr.failed, tbody tr.failed:nth-child(even), table.rounds tbody.failed { background: #fff1f2; }
tr.outcomes td { border-top: none; padding-top: 0; }
tr.outcomes .label { font-size: 11px; text-transform: uppercase; letter-spacing: .05em;
  font-weight: 600; }
tr.outcomes ul { list-style:none; margin:2px 0 4px; padding:0; font-size:12.5px; }
tr.outcomes li { margin-top: 3px; }
.rejected, .rejected .label { color: var(--red); }
.absent, .absent .label { color: var(--amber); }
td code { white-space: nowrap; }
table.rounds tbody tr:not(:last-child) td { border-bottom: none; }
td.num { text-align:right; }
.muted { color: var(--muted); font-size: 12px; }
.reason, .detail { color: var(--red); }
tr:not(.failed) .detail { color: var(--muted); }
.pill { display:inline-block; padding: 1px 9px; border-radius: 999px; font-size:12px;
  font-weight:600; white-space: nowrap; }
.pill.ok { background: var(--green-bg); color: var(--green); }
.pill.fail { background: var(--red-bg); color: var(--red); }
.pill.warn { background: var(--amber-bg); color: var(--amber); }
.pill.none { background: #e2e8f0; color: #334155; }
.share { white-space:nowrap; }
.bar { display:inline-block; width:90px; height:8px; background:#e2e8f0; border-radius:4px;
  margin-right:8px; vertical-align: middle; overflow:hidden; }
.bar span { display:block; height:100%; background: var(--blue); }
.verdict { font-weight:700; margin: -4px 0 12px; }
.verdict.ok { color: var(--green); } .verdict.fail { color: var(--red); }
.verdict.warn { color: var(--amber); }
.empty-line { color: var(--muted); }
footer { color: var(--muted); font-size: 12px; text-align:center; margin-top: 8px; }
"""
