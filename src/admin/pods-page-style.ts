/** The `/pods` page's stylesheet: the system's fonts, colours with enough contrast, one column on a narrow screen. */
export const PODS_PAGE_STYLE = `
:root { --fg: #1b1b1b; --muted: #4d4d4d; --bg: #ffffff; --panel: #f3f4f6; --line: #c9ccd1; --focus: #1a4fd6;
  --sandbox: #0068a8; --pull: #c2410c; --create: #047857; --start: #9d3f82; --kubelet: #6b6b6b; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--focus); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -9999px; }
.skip:focus { left: 8px; top: 8px; background: var(--bg); padding: 6px 10px; z-index: 2; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
header, main, footer { padding: 12px 20px; }
header { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-end; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.4rem; margin: 0; }
h2 { font-size: .8rem; margin: 0 0 2px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.sub { margin: 0; color: var(--muted); }
.node dl { display: flex; gap: 18px; margin: 0; }
.node dt { font-size: .8rem; color: var(--muted); }
.node dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; }
form { display: flex; flex-wrap: wrap; gap: 10px 18px; align-items: flex-end; margin-bottom: 8px; }
label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); gap: 2px; }
label.check { flex-direction: row; align-items: center; gap: 6px; color: var(--fg); }
select, input, button { font: inherit; color: var(--fg); }
select, input[type=text] { padding: 5px 8px; border: 1px solid #767676; border-radius: 4px; background: var(--bg); min-height: 34px; }
button { padding: 5px 12px; border: 1px solid #767676; border-radius: 4px; background: var(--panel); min-height: 34px; cursor: pointer; }
#status { margin: 4px 0 8px; color: var(--muted); }
#status.error { color: #a40e26; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; list-style: none; padding: 0; margin: 0 0 10px; font-size: .85rem; }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 14px; height: 12px; border-radius: 2px; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; font-weight: 600; padding: 4px 0 6px; }
th, td { text-align: left; padding: 7px 8px; border-bottom: 1px solid var(--line); vertical-align: middle; }
thead th { font-size: .8rem; color: var(--muted); font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th[scope=row] { font-weight: 400; }
.expand { background: none; border: 0; padding: 0; min-height: 0; color: var(--focus); text-decoration: underline; cursor: pointer; text-align: left; font-weight: 600; overflow-wrap: anywhere; }
th[scope=row] { min-width: 13em; }
td.dominant { white-space: nowrap; }
.ns { display: block; font-size: .8rem; color: var(--muted); }
.wf { width: 48%; min-width: 220px; }
.track { position: relative; height: 22px; background: var(--panel); border-radius: 3px; overflow: hidden; }
.bar { position: absolute; top: 3px; bottom: 3px; min-width: 2px; border-radius: 2px; }
.b-sandbox, .t-sandbox { background: var(--sandbox); }
.b-pull, .t-pull { background: var(--pull); }
.b-create, .t-create { background: var(--create); }
.b-start, .t-start { background: var(--start); }
.b-kubelet { background: repeating-linear-gradient(135deg, var(--kubelet) 0 3px, #d4d4d4 3px 6px); }
.t-kubelet { background: var(--kubelet); }
.b-failed { box-shadow: inset 0 0 0 2px #fff, inset 0 0 0 4px #a40e26; }
.bar.dom { top: 1px; bottom: 1px; box-shadow: inset 0 0 0 2px var(--fg); z-index: 1; }
.mark { position: absolute; top: 0; bottom: 0; width: 0; border-left: 2px dashed var(--fg); opacity: .55; }
.tag { display: inline-block; color: #fff; font-size: .8rem; font-weight: 600; padding: 1px 7px; border-radius: 10px; }
.share { font-size: .8rem; color: var(--muted); margin-left: 4px; }
.failed { color: #a40e26; font-weight: 600; }
tr.details > td { background: #fafafa; }
.phases { margin: 4px 0 8px; font-size: .85rem; }
.phases th, .phases td { padding: 4px 6px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; font-size: .85rem; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; word-break: break-all; }
footer { color: var(--muted); font-size: .85rem; border-top: 1px solid var(--line); }
@media (max-width: 760px) {
  header, main, footer { padding: 10px 12px; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  #starts, #rows, #rows > tr, #rows > tr > th, #rows > tr > td { display: block; width: 100%; }
  tr.pod { border: 1px solid var(--line); border-radius: 6px; margin-top: 10px; padding: 4px 0; }
  tr.pod > th, tr.pod > td { border: 0; padding: 3px 10px; }
  tr.pod > td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); font-size: .8rem; }
  .wf { width: 100%; min-width: 0; }
  th[scope=row] { min-width: 0; }
  #starts > caption { display: block; }
  tr.pod > td.wf::before { display: block; }
  .num { text-align: left; }
  tr.details > td { display: block; overflow-x: auto; }
}
`;
