// attn's interactive page: the head view, the query's weights, the model view and the steps of
// one head. It reads the JSON blob beside it (attn_cli/views/page/__init__.py writes it) and
// fetches nothing: the packed weights are inflated by the browser's own DecompressionStream.
(function () {
  "use strict";
  const root = document.currentScript.closest(".attn-page");
  const data = JSON.parse(root.querySelector("script.attn-data").textContent);
  // tokens: the queries; key_tokens (cross-attention: the source) the keys when they are another sequence
  const KT = data.key_tokens || data.tokens, KSPECIAL = data.key_special || data.special;
  const M = data.model, L = M.layers, H = M.heads, S = data.tokens.length, SK = KT.length, MASKED = 255;
  const ROW = 18; // px per token row in the head view (page.css .tok height)
  const HEAD_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363"];
  const state = { layer: data.start_layer, head: data.auto_head, query: data.query, key: null };
  let packed = null, keys = null; // Uint8Array (L, H, S, SK) of centi-weights; Float32Array (L, KV, SK, d)

  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const svgEl = (tag, attrs) => {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };
  const fmt = (x, n) => (x === null || x === undefined ? "—" : x.toFixed(n));
  const headColour = (h) => HEAD_COLOURS[h % HEAD_COLOURS.length];

  // The heat colours of the terminal and the image files (views/palette.py): √ spread, blue → red → yellow.
  const STOPS = [[0, [20, 24, 48]], [0.5, [170, 40, 60]], [1, [250, 220, 80]]];
  function heat(w) {
    const s = Math.sqrt(Math.max(0, Math.min(1, w)));
    for (let i = 0; i + 1 < STOPS.length; i++) {
      const [x0, c0] = STOPS[i], [x1, c1] = STOPS[i + 1];
      if (s <= x1) { const t = (s - x0) / (x1 - x0); return c0.map((a, k) => Math.trunc(a + (c1[k] - a) * t)); }
    }
    return STOPS[STOPS.length - 1][1];
  }

  const HEAT = Array.from({ length: 101 }, (_, v) => heat(v / 100)); // the colour of each stored hundredth, computed once

  async function inflate(b64) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  function halfToFloat(h) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    if (e === 0) return s * f * Math.pow(2, -24);
    if (e === 31) return f ? NaN : s * Infinity;
    return s * (1 + f / 1024) * Math.pow(2, e - 15);
  }

  // --- what the views read --------------------------------------------------------------------
  const visible = (l, i, j) => packed[((l * H) * S + i) * SK + j] !== MASKED;
  const centi = (l, h, i, j) => packed[((l * H + h) * S + i) * SK + j];
  const exact = () => state.query === data.query; // the query whose rows and steps are kept whole
  const held = (i) => data.rows === null || data.rows.includes(i); // a notebook's InspectResult holds its query's rows only
  const layerName = (l) => data.layer_info[l].layer;

  // The weights of the selected query in head h (a number, or "mean"): exact numbers for the
  // page's query, else the stored 0.01 steps (the mean of those for "mean"). null where masked.
  function row(l, h, i) {
    if (i === data.query) {
      const e = data.exact[l][h === "mean" ? H : h];
      return e.w.map((w, j) => (visible(l, i, j) ? w : null));
    }
    const out = [];
    for (let j = 0; j < SK; j++) {
      if (!visible(l, i, j)) { out.push(null); continue; }
      if (h === "mean") { let s = 0; for (let k = 0; k < H; k++) s += centi(l, k, i, j); out.push(s / H / 100); }
      else out.push(centi(l, h, i, j) / 100);
    }
    return out;
  }
  const shownHead = () => (state.head === "all" ? "mean" : state.head);

  // --- the page's skeleton --------------------------------------------------------------------
  root.append(el("h1", {}, `${M.name} · ${M.architecture}, ${L} layers × ${H} heads${M.kv_heads !== H ? ` (${M.kv_heads} key/value heads)` : ""} · query "${data.query_text}"`));
  root.append(el("p", { class: "note" },
    data.rows === null
      ? `Every query's weights are stored rounded to 0.01 (8 bits each); the rows of the query "${data.tokens[data.query]}" ` +
        "and its steps are the exact float32 numbers (hover a number for more digits). Hover or click a token on the left to make it the query."
      : `The rows of the query "${data.query_text}", exact (hover a number for more digits).`));
  for (const n of data.notes) root.append(el("p", { class: "note" }, n));
  const controls = el("div", { class: "controls" });
  const layerSelect = el("select", { class: "layer", "aria-label": "Layer" });
  for (let l = 0; l < L; l++) layerSelect.append(el("option", { value: String(l) }, String(layerName(l))));
  const headSelect = el("select", { class: "head", "aria-label": "Head" });
  for (let h = 0; h < H; h++) headSelect.append(el("option", { value: String(h) }, String(h)));
  headSelect.append(el("option", { value: "mean" }, "mean"), el("option", { value: "all" }, "all"));
  const layerLabel = el("label", {}, "Layer "), headLabel = el("label", {}, "Head ");
  layerLabel.append(layerSelect); headLabel.append(headSelect);
  const status = el("span", { class: "status note" });
  controls.append(layerLabel, headLabel);
  // generate --html: a slider over the written tokens; step k is the row of the position that chose token k
  const written = data.written || [];
  const slider = el("input", { type: "range", class: "step", "aria-label": "Step", min: "0", max: String(Math.max(0, written.length - 1)), value: "0" });
  const stepNote = el("span", { class: "stepnote" });
  if (written.length) {
    const stepLabel = el("label", {}, "Step ");
    stepLabel.append(slider);
    controls.append(stepLabel, stepNote);
  }
  controls.append(status);
  root.append(controls);

  const panels = el("div", { class: "panels" });
  const headView = el("div", { class: "headview" });
  const left = el("div", { class: "column left" }), right = el("div", { class: "column right" });
  const lines = svgEl("svg", { class: "lines", width: "160", height: String(Math.max(S, SK) * ROW) });
  headView.append(left, lines, right);
  for (const [col, side, tokens, special] of [[left, "q", data.tokens, data.special], [right, "k", KT, KSPECIAL]]) {
    tokens.forEach((text, i) => {
      col.append(el("div", { class: "tok" + (special[i] ? " special" : "") + (side === "q" && !held(i) ? " inactive" : ""), "data-i": String(i), "data-side": side, title: `${i}: ${text}` }, text));
    });
  }
  const numbers = el("div", { class: "numbers" });
  const topList = el("ol", { class: "top" });
  const weightsTable = el("table", { class: "weights" });
  numbers.append(el("h2", {}, "Weights of the query"), topList, weightsTable);
  panels.append(headView, numbers);
  root.append(panels);

  root.append(el("h2", {}, "Model view: layers × heads (click one to select it)"));
  const modelView = el("div", { class: "modelview", style: `grid-template-columns: 2.5em repeat(${H}, 52px)` });
  root.append(modelView);
  const stepsBox = el("div", { class: "steps" });
  root.append(el("h2", {}, "Steps of the selected head"), stepsBox);

  // --- drawing --------------------------------------------------------------------------------
  function drawHeadView() {
    const l = state.layer, i = state.query;
    lines.replaceChildren();
    const heads = state.head === "all" ? [...Array(H).keys()] : [state.head];
    for (const h of heads) {
      const w = row(l, h, i), colour = state.head === "all" ? headColour(h) : "#c0392b";
      for (let j = 0; j < SK; j++) {
        if (w[j] === null || w[j] < 0.005) continue;
        lines.append(svgEl("line", { x1: "2", y1: String(i * ROW + ROW / 2), x2: "158", y2: String(j * ROW + ROW / 2), stroke: colour,
          "stroke-width": "2", "stroke-opacity": String(Math.min(1, w[j])), "data-head": String(h), "data-j": String(j) }));
      }
    }
    for (const t of left.children) t.classList.toggle("query", Number(t.dataset.i) === i);
    for (const t of right.children) {
      const j = Number(t.dataset.i);
      t.classList.toggle("masked", !visible(l, i, j));
      t.classList.toggle("key", j === state.key);
    }
  }

  function drawNumbers() {
    const h = shownHead(), w = row(state.layer, h, state.query);
    const what = h === "mean" ? "the mean over heads" : `head ${h}`; // "all" draws every head's lines; its numbers are the mean
    numbers.firstChild.textContent = `Weights of "${data.tokens[state.query]}" (${data.rows === null ? "token" : "row"} ${state.query}) · layer ${layerName(state.layer)}, ${what}` + (exact() ? "" : " (rounded to 0.01)");
    const order = [...w.keys()].filter((j) => w[j] !== null).sort((a, b) => w[b] - w[a] || a - b).slice(0, 5);
    topList.replaceChildren(...order.map((j) => el("li", { "data-j": String(j) }, `${KT[j]} ${fmt(w[j], 2)}`)));
    weightsTable.replaceChildren();
    for (let j = 0; j < SK; j++) {
      const tr = el("tr", { "data-j": String(j), class: (w[j] === null ? "masked" : "") + (j === state.key ? " key" : "") });
      const bar = el("td", { class: "barcell" });
      if (w[j] !== null) bar.append(el("span", { class: "bar", style: `width:${(w[j] * 100).toFixed(1)}%` }));
      tr.append(el("td", { class: "num" }, String(j)), el("td", {}, KT[j]), bar,
        el("td", { class: "num weight", title: w[j] === null ? "masked: this query may not see this key" : String(w[j]) }, w[j] === null ? "masked" : fmt(w[j], 2)));
      tr.addEventListener("click", () => { if (w[j] !== null) { state.key = j; update(); } });
      weightsTable.append(tr);
    }
  }

  function drawModelView() {
    modelView.replaceChildren(el("div", { class: "label" }, "L\\H"));
    for (let h = 0; h < H; h++) modelView.append(el("div", { class: "label" }, String(h)));
    for (let l = 0; l < L; l++) {
      modelView.append(el("div", { class: "label" }, String(layerName(l))));
      const shown = data.rows === null ? [...Array(S).keys()] : data.rows; // the rows drawn: every query, or the one held
      for (let h = 0; h < H; h++) {
        const c = el("canvas", { width: String(SK), height: String(shown.length), "data-layer": String(l), "data-head": String(h), title: `layer ${layerName(l)}, head ${h}`,
          class: shown.length < S ? "strip" : "" });
        const ctx = c.getContext("2d"), img = ctx.createImageData(SK, shown.length);
        for (const [r, i] of shown.entries()) for (let j = 0; j < SK; j++) {
          const v = centi(l, h, i, j), p = 4 * (r * SK + j);
          const [red, green, blue] = v === MASKED ? [225, 225, 225] : data.rows === null ? HEAT[v] : heat(data.exact[l][h].w[j]);
          img.data[p] = red; img.data[p + 1] = green; img.data[p + 2] = blue; img.data[p + 3] = 255;
        }
        ctx.putImageData(img, 0, 0);
        c.addEventListener("click", () => { state.layer = l; state.head = h; update(); });
        modelView.append(c);
      }
    }
  }

  function vector(name, x) {
    const p = el("p", { class: "vector" });
    p.append(el("b", {}, name + " "), document.createTextNode("[" + Array.from(x, (v) => fmt(v, 3)).join(", ") + "]"));
    return p;
  }

  function keyVector(l, kv, j) {
    const d = M.head_dim, base = ((l * M.kv_heads + kv) * SK + j) * d;
    return keys.slice(base, base + d);
  }

  function drawSteps() {
    stepsBox.replaceChildren();
    const l = state.layer, h = state.head;
    if (typeof h !== "number") { stepsBox.append(el("p", { class: "note" }, "Choose one head to see its steps.")); return; }
    if (!exact()) {
      stepsBox.append(el("p", { class: "note" }, `The steps are kept for the query "${data.tokens[data.query]}" (token ${data.query}) only: hover it on the left, or write the page again with -q.`));
      return;
    }
    const e = data.exact[l][h], info = data.layer_info[l], scale = M.scale, d = M.head_dim;
    const key = state.key !== null && visible(l, state.query, state.key) ? state.key : null;
    if (!e.qk) { stepsBox.append(el("p", { class: "note" }, "The scores are per token: this result is at word level.")); return; }
    stepsBox.append(el("p", { class: "note" }, `Layer ${layerName(l)}, head ${h}` + (M.kv_heads !== H ? ` reads key/value head ${e.kv} (grouped-query attention: ${H / M.kv_heads} query heads share it)` : "") +
      `. Step 1: q and k (${M.rotary ? "after RoPE, " : ""}d_k = ${d}); step 2: Q·K, scaled by ${Math.abs(scale * Math.sqrt(d) - 1) < 1e-6 ? "1/√d_k" : scale}, ` +
      (info.adjusts ? `then the ${info.adjusts} column the model adds, ` : "") + "softmax; step 3: Σ weights·v."));
    if (e.q) stepsBox.append(vector("q =", e.q));
    if (key !== null && keys) stepsBox.append(vector(`k(${KT[key]}) ≈`, keyVector(l, e.kv, key)));
    const table = el("table"), head = el("tr");
    for (const name of ["#", "key", "Q·K", "Q·K/√d_k", ...(e.adj ? [info.adjusts] : []), "softmax"]) head.append(el("th", {}, name));
    table.append(head);
    for (let j = 0; j < SK; j++) {
      const seen = visible(l, state.query, j), tr = el("tr", { class: (seen ? "" : "masked") + (j === key ? " key" : ""), "data-j": String(j) });
      const cells = [String(j), KT[j], seen ? fmt(e.qk[j], 2) : "masked", seen ? fmt(e.qk[j] * scale, 2) : "", ...(e.adj ? [seen ? fmt(e.adj[j], 2) : ""] : []), seen ? fmt(e.w[j], 4) : ""];
      for (const c of cells) tr.append(el("td", {}, c));
      tr.addEventListener("click", () => { if (seen) { state.key = j; update(); } });
      table.append(tr);
    }
    stepsBox.append(table);
    if (e.out) stepsBox.append(vector("Σ weights·v =", e.out));
    if (key !== null && keys && e.q) drawNeurons(e, keyVector(l, e.kv, key), key);
    else if (keys && e.q) stepsBox.append(el("p", { class: "note" }, "Click a key (in the weights or this table) for its k vector and the neuron view."));
  }

  // The neuron view: q ⊙ k per dimension (after RoPE), whose sum is Q·K.
  function drawNeurons(e, k, j) {
    const d = M.head_dim, prod = Array.from(e.q, (q, i) => q * k[i]), top = Math.max(1e-9, ...prod.map(Math.abs));
    const width = Math.max(200, d * 6), svg = svgEl("svg", { class: "neuron-view", width: String(width), height: "120" });
    svg.append(svgEl("line", { x1: "0", x2: String(width), y1: "60", y2: "60", stroke: "#999" }));
    prod.forEach((p, i) => {
      const h = (Math.abs(p) / top) * 56;
      const r = svgEl("rect", { x: String(i * (width / d)), width: String(Math.max(1, width / d - 1)), y: String(p >= 0 ? 60 - h : 60), height: String(h), fill: p >= 0 ? "#2e86c1" : "#c0392b" });
      r.append(svgEl("title")); r.firstChild.textContent = `dim ${i}: q·k = ${p.toFixed(4)}`;
      svg.append(r);
    });
    const sum = prod.reduce((a, b) => a + b, 0);
    stepsBox.append(el("h2", {}, `Neuron view: q ⊙ k for "${data.tokens[state.query]}" → "${KT[j]}"`), svg,
      el("p", { class: "note" }, `Σ q ⊙ k = ${sum.toFixed(2)} (Q·K = ${fmt(e.qk[j], 2)}; k is stored as float16). Blue: dimensions that raise the score; red: that lower it.`));
  }

  function update() {
    layerSelect.value = String(state.layer);
    headSelect.value = String(state.head);
    drawHeadView();
    drawNumbers();
    for (const c of modelView.querySelectorAll("canvas")) c.classList.toggle("selected", Number(c.dataset.layer) === state.layer && String(state.head) === c.dataset.head);
    drawSteps();
    const k = written.findIndex((s) => s.position - 1 === state.query);
    if (k >= 0) slider.value = String(k);
    stepNote.textContent = k >= 0 ? `step ${k + 1} of ${written.length}: wrote "${written[k].text}" (p = ${Math.exp(written[k].logprob).toFixed(2)})` : "";
    status.textContent = `layer ${layerName(state.layer)} · head ${state.head} · query "${data.tokens[state.query]}"`;
  }

  // --- events ---------------------------------------------------------------------------------
  slider.addEventListener("input", () => { state.query = written[Number(slider.value)].position - 1; state.key = null; update(); });
  layerSelect.addEventListener("change", () => { state.layer = Number(layerSelect.value); update(); });
  headSelect.addEventListener("change", () => { const v = headSelect.value; state.head = v === "mean" || v === "all" ? v : Number(v); update(); });
  for (const t of left.children) {
    const pick = () => { if (held(Number(t.dataset.i)) && state.query !== Number(t.dataset.i)) { state.query = Number(t.dataset.i); state.key = null; update(); } };
    t.addEventListener("mouseenter", pick);
    t.addEventListener("click", pick);
  }
  for (const t of right.children) t.addEventListener("click", () => { const j = Number(t.dataset.i); if (visible(state.layer, state.query, j)) { state.key = j; update(); } });

  Promise.all([inflate(data.weights.data), data.keys ? inflate(data.keys.data) : null]).then(([w, k]) => {
    packed = w;
    if (k) { const halves = new Uint16Array(k.buffer, k.byteOffset, k.byteLength / 2); keys = Float32Array.from(halves, halfToFloat); }
    drawModelView();
    update();
    root.dataset.ready = "true"; // the browser tests wait for this
  }).catch((err) => { root.append(el("p", { class: "error" }, "This page could not unpack its data: " + err)); throw err; });
})();
