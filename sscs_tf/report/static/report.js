// The query table of the report (sscs_tf/report/html.py): reads the embedded JSON, filters,
// sorts and draws one page of rows at a time, so a split of 17,031 queries stays quick.
// Text from the data is set with textContent only (sentences and ids are not HTML).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const byId = (id) => document.getElementById(id);
  const video = byId("video");
  const hasGt = data.has_gt;
  // One object per query; top1 is the top-1 IoU (0 when nothing was kept), null without gt.
  const rows = data.queries.map((q, index) => {
    const segments = q[5];
    const top1 = !hasGt ? null : (segments.length && segments[0][3] !== null ? segments[0][3] : 0);
    return { index, id: q[0], video: q[1], sentence: q[2], duration: q[3], gt: q[4],
             segments, top1, words: q[2].toLowerCase(), videoKey: q[1].toLowerCase() };
  });
  const state = { view: rows, page: 0, pageSize: 50 };
  const comparators = {
    "order": (a, b) => a.index - b.index,
    "iou-asc": (a, b) => a.top1 - b.top1 || a.index - b.index,
    "iou-desc": (a, b) => b.top1 - a.top1 || a.index - b.index,
    "video": (a, b) => (a.video < b.video ? -1 : a.video > b.video ? 1 : a.index - b.index),
    "duration": (a, b) => a.duration - b.duration || a.index - b.index,
  };

  function number(id) {
    const value = parseFloat(byId(id).value);
    return Number.isFinite(value) ? value : null;
  }

  function applyFilters() {
    const words = byId("filter-words").value.toLowerCase().split(/\s+/).filter(Boolean);
    const videoText = byId("filter-video").value.trim().toLowerCase();
    const low = hasGt ? number("iou-min") : null;
    const high = hasGt ? number("iou-max") : null;
    const view = rows.filter((r) =>
      words.every((w) => r.words.includes(w)) &&
      (!videoText || r.videoKey.includes(videoText)) &&
      (low === null || r.top1 >= low) && (high === null || r.top1 <= high));
    view.sort(comparators[byId("sort").value]);
    state.view = view;
    state.page = 0;
    render();
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function seconds(value) {
    return value.toFixed(2);
  }

  // Red (IoU 0) through yellow to green (IoU 1): the cell's background.
  function iouColour(iou) {
    return "hsl(" + Math.round(120 * Math.max(0, Math.min(1, iou))) + ", 70%, 80%)";
  }

  function bar(className, start, end, duration, lane, label) {
    const node = element("div", "bar " + className);
    const left = Math.max(0, Math.min(1, start / duration));
    const right = Math.max(left, Math.min(1, end / duration));
    node.style.left = 100 * left + "%";
    node.style.width = 100 * (right - left) + "%";
    node.style.top = 3 + 10 * lane + "px";
    node.title = label;
    node.dataset.start = start;
    node.dataset.end = end;
    if (video) {
      node.classList.add("clickable");
      node.addEventListener("click", () => seek(start));
    }
    return node;
  }

  function seek(start) {
    video.currentTime = start;
    video.play().catch(() => {});  // a paused, seeked video is the fallback
  }

  function segmentText(segment) {
    let text = seconds(segment[0]) + "\u2013" + seconds(segment[1]) + " s";
    if (segment[2] !== null) text += " \u00b7 score " + segment[2].toFixed(3);
    if (segment[3] !== null) text += " \u00b7 IoU " + segment[3].toFixed(2);
    return text;
  }

  function timeline(row) {
    const cell = element("td", "timeline");
    const track = element("div", "track");
    const lanes = (row.gt ? 1 : 0) + row.segments.length;
    track.style.height = 6 + 10 * Math.max(lanes, 1) + "px";
    if (row.gt) {
      const label = "ground truth " + seconds(row.gt[0]) + "\u2013" + seconds(row.gt[1]) + " s";
      track.appendChild(bar("gt", row.gt[0], row.gt[1], row.duration, 0, label));
    }
    row.segments.forEach((segment, i) => {
      track.appendChild(bar("pred" + (i === 0 ? " rank1" : ""), segment[0], segment[1],
                            row.duration, (row.gt ? 1 : 0) + i,
                            "rank " + (i + 1) + ": " + segmentText(segment)));
    });
    cell.appendChild(track);
    const scale = element("div", "scale");
    scale.appendChild(element("span", "", "0 s"));
    scale.appendChild(element("span", "", seconds(row.duration) + " s"));
    cell.appendChild(scale);
    return cell;
  }

  function tableRow(row) {
    const tr = element("tr");
    tr.dataset.index = row.index;
    tr.appendChild(element("td", "num", String(row.index + 1)));
    tr.appendChild(element("td", "video", row.video));
    const sentence = element("td", "sentence", row.sentence);
    sentence.appendChild(element("div", "qid", row.id));
    tr.appendChild(sentence);
    if (hasGt) {
      const iou = element("td", "iou");
      const badge = element("span", "", row.top1.toFixed(2));
      badge.style.background = iouColour(row.top1);
      iou.appendChild(badge);
      tr.appendChild(iou);
    }
    tr.appendChild(timeline(row));
    const list = element("ol", "segments");
    row.segments.forEach((segment) => list.appendChild(element("li", "", segmentText(segment))));
    const segments = element("td", "kept");
    segments.appendChild(list);
    tr.appendChild(segments);
    return tr;
  }

  function render() {
    const total = state.view.length;
    const pages = Math.max(1, Math.ceil(total / state.pageSize));
    state.page = Math.max(0, Math.min(state.page, pages - 1));
    const first = state.page * state.pageSize;
    const shown = state.view.slice(first, first + state.pageSize);
    const body = document.querySelector("#queries tbody");
    const fragment = document.createDocumentFragment();
    shown.forEach((row) => fragment.appendChild(tableRow(row)));
    body.replaceChildren(fragment);
    byId("empty").hidden = total > 0;
    const count = (n) => n.toLocaleString("en");
    const filtered = total < rows.length ? " (filtered from " + count(rows.length) + ")" : "";
    byId("count").textContent = total
      ? "Rows " + count(first + 1) + "\u2013" + count(first + shown.length) + " of " + count(total) + filtered
      : "0 of " + count(rows.length);
    byId("prev").disabled = byId("first").disabled = state.page === 0;
    byId("next").disabled = byId("last").disabled = state.page >= pages - 1;
    document.body.dataset.matching = String(total);
    document.body.dataset.renderMs = performance.now().toFixed(1);
  }

  let pending = 0;
  function onFilterInput() {  // typing: filter once the keys pause
    clearTimeout(pending);
    pending = setTimeout(applyFilters, 150);
  }

  function showPage(page) {
    state.page = page;
    render();
    byId("queries").scrollIntoView({ block: "start" });
  }

  function sortBy(key) {
    byId("sort").value = key;
    applyFilters();
  }

  if (!hasGt) document.body.classList.add("no-gt");
  for (const id of ["filter-words", "filter-video", "iou-min", "iou-max"]) {
    byId(id).addEventListener("input", onFilterInput);
  }
  byId("sort").addEventListener("change", applyFilters);
  byId("worst").addEventListener("click", () => sortBy("iou-asc"));
  byId("sort-iou").addEventListener("click", () =>
    sortBy(byId("sort").value === "iou-asc" ? "iou-desc" : "iou-asc"));
  byId("page-size").addEventListener("change", () => {
    state.pageSize = parseInt(byId("page-size").value, 10);
    showPage(0);
  });
  byId("first").addEventListener("click", () => showPage(0));
  byId("prev").addEventListener("click", () => showPage(state.page - 1));
  byId("next").addEventListener("click", () => showPage(state.page + 1));
  byId("last").addEventListener("click", () => showPage(Number.MAX_SAFE_INTEGER));
  render();
  document.body.dataset.ready = "1";
})();
