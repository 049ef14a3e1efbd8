// Command-center dashboard: figures from /rounds/{id}/progress, the points by pace and
// the de-pool lists. While the pill says "实时" the figures are re-read every few
// seconds (scans and uploads move them without a de-pooling event) and at once on
// each event of the live feed (/events, read with fetch so the token stays in a
// header); when the feed is cut, every 10 s ("轮询"). Times are shown in the
// deployment's zone (the progress answer names it), never the browser's.
"use strict";
(function () {
  const API = "/api/v1";
  const KEY = "screening.admin-token";
  const LIVE_REFRESH_MS = 5000;
  const POLL_MS = 10000;
  const POINTS_PAGE = 20;
  const $ = (sel) => document.querySelector(sel);
  const fmt = new Intl.NumberFormat("zh-CN");
  const KINDS = {
    "case-opened": "新复核案", "member-resampled": "已单采", "member-resulted": "单管出结果",
    "case-resolved": "复核结案", "case-overdue": "复核超时", "member-overdue": "召回超时",
  };
  const STATUS = {
    "to-recall": "待召回", resampled: "已单采", negative: "阴性", positive: "阳性",
    invalid: "无效,需再采", open: "未结", resolved: "已结",
  };
  let token = sessionStorage.getItem(KEY) || "";
  let roundId = null;
  let zone = "Asia/Shanghai";
  let refreshTimer = null;
  let tickTimer = null;
  let feedAbort = null;
  let lastEvent = null;
  let shownEvents = new Set();
  let pointsCursors = [null];  // the cursor of each page seen so far; the last is shown

  async function call(path) {
    const r = await fetch(API + path, { headers: { Authorization: "Bearer " + token } });
    if (r.status === 401 || r.status === 403) { throw Object.assign(new Error("token"), { auth: true }); }
    if (!r.ok) { throw Object.assign(new Error(path), { status: r.status }); }
    return r;
  }
  async function api(path) { return (await call(path)).json(); }

  function text(sel, value) { const el = $(sel); if (el) { el.textContent = value; } }
  function n(value) { return value === null || value === undefined ? "-" : fmt.format(value); }
  function pct(value) { return value === null || value === undefined ? "-" : (value * 100).toFixed(1) + "%"; }
  function hours(minutes) { return (minutes / 60).toFixed(1) + " 小时"; }
  function tat(t) { return t.p50 === null ? "-" : t.p50 + " / " + t.p95; }
  function clock(iso) { return new Date(iso).toLocaleTimeString("zh-CN", { timeZone: zone, hour12: false }); }
  function stamp(iso) {
    return new Date(iso).toLocaleString("zh-CN", { timeZone: zone, hour12: false,
      month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  }
  function notice(message) { text("#notice", message || ""); }
  function cell(row, value, cls) {
    const td = document.createElement("td");
    if (value instanceof Node) { td.appendChild(value); } else { td.textContent = value; }
    if (cls) { td.className = cls; }
    row.appendChild(td);
  }
  function button(label, testid, onclick) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = label; b.dataset.testid = testid; b.onclick = onclick;
    return b;
  }
  function bar(share) {
    const outer = document.createElement("div");
    outer.className = "bar" + (share >= 1 ? " full" : "");
    const inner = document.createElement("div");
    inner.style.width = Math.min(100, Math.round((share || 0) * 100)) + "%";
    outer.appendChild(inner);
    return outer;
  }
  // a table is redrawn only when its rows changed: a timer refresh leaves the screen
  // (and a row someone is about to click) alone
  const drawn = new Map();
  function fill(tableSel, rows, render, empty) {
    const body = $(tableSel + " tbody");
    const signature = JSON.stringify(rows);
    if (drawn.get(body) === signature) { return; }
    drawn.set(body, signature);
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      cell(tr, empty, "empty");
      tr.firstChild.colSpan = $(tableSel + " thead tr").children.length;
      body.appendChild(tr);
    }
    for (const item of rows) { const tr = document.createElement("tr"); render(tr, item); body.appendChild(tr); }
  }

  // a PDF behind the token: fetched with the header, handed to the browser as a file
  async function download(path, filename) {
    try {
      const blob = await (await call(path)).blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob); a.download = filename;
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      notice("");
    } catch (e) {
      notice(e.auth ? "令牌无权下载此文件,请用指挥中心令牌重新登录。" : "下载失败,请检查网络后重试。");
    }
  }

  function showProgress(p) {
    zone = p.timezone || zone;
    text("[data-testid=registered]", n(p.registered));
    text("[data-testid=population]", n(p.population));
    text("[data-testid=samples]", n(p.samples));
    $("#coverage-bar").style.width = Math.min(100, p.population ? 100 * p.registered / p.population : 0) + "%";
    text("[data-testid=tested]", n(p.tubes.tested));
    text("[data-testid=in-transit]", n(p.tubes.in_transit));
    text("[data-testid=received]", n(p.tubes.received));
    text("[data-testid=positive-pools]", n(p.pools.positive + p.pools.suspicious));
    text("[data-testid=pools-positive]", n(p.pools.positive));
    text("[data-testid=pools-suspicious]", n(p.pools.suspicious));
    text("[data-testid=positive-singles]", n(p.singles.positive + p.singles.suspicious));
    text("[data-testid=singles-positive]", n(p.singles.positive));
    text("[data-testid=singles-suspicious]", n(p.singles.suspicious));
    text("[data-testid=invalid]", n(p.results.invalid));
    text("[data-testid=confirmed]", n(p.confirmed_positive));
    text("[data-testid=open-cases]", n(p.retests.open));
    text("[data-testid=overdue-cases]", n(p.retests.overdue));
    text("[data-testid=resolved-cases]", n(p.retests.resolved));
    text("[data-testid=boxes-late]", n(p.boxes_late));
    text("[data-testid=tat]", tat(p.turnaround_hours));
    fill("#districts", p.districts, (tr, d) => {
      tr.dataset.district = d.district;
      cell(tr, d.district + " " + d.name);
      cell(tr, n(d.registered) + " / " + n(d.population));
      const wrap = document.createElement("div");
      wrap.append(pct(d.coverage), bar(d.coverage));
      cell(tr, wrap);
      cell(tr, n(d.pools.positive + d.pools.suspicious));
      cell(tr, n(d.boxes_late), d.boxes_late ? "bad" : "");
    }, "无分区");
    fill("#labs", p.labs, (tr, l) => {
      tr.dataset.lab = l.lab;
      cell(tr, l.lab + " " + l.name);
      cell(tr, n(l.tubes.received + l.tubes.tested) + " / " + n(l.daily_capacity_tubes));
      const wrap = document.createElement("div");
      wrap.append(pct(l.load), bar(l.load));
      cell(tr, wrap);
      cell(tr, n(l.tubes.tested));
      cell(tr, tat(l.in_lab_hours));
      cell(tr, tat(l.turnaround_hours));
    }, "尚无实验室收样");
  }

  function showPoints(page) {
    fill("#points", page.items, (tr, p) => {
      tr.dataset.point = p.sampling_point;
      if (p.lagging) { tr.className = "lagging"; }
      cell(tr, p.sampling_point + " " + p.name + (p.lagging ? " 落后" : ""));
      cell(tr, p.district);
      cell(tr, n(p.registered) + " / " + n(p.expected));
      cell(tr, p.pace === null ? "-" : pct(p.pace), p.lagging ? "bad" : "");
      cell(tr, n(p.unshipped_tubes));
      cell(tr, n(p.boxes_late), p.boxes_late ? "bad" : "");
    }, "本轮无采样点");
    text("#points-summary", "共 " + n(page.total) + " 个 · 落后 " + n(page.lagging) + " 个(落后者在前)");
    const pageNo = pointsCursors.length;
    const pages = Math.max(1, Math.ceil(page.total / POINTS_PAGE));
    text("#points-page", "第 " + pageNo + " / " + pages + " 页");
    $("#points-prev").disabled = pageNo <= 1;
    $("#points-next").disabled = !page.next_cursor;
    $("#points-next").dataset.cursor = page.next_cursor || "";
  }

  function caseActions(c) {
    const span = document.createElement("span");
    span.append(
      button("经过", "case-open", () => openCase(c.case_id)),
      button("召回单", "case-recall-row", () => download(
        "/rounds/" + roundId + "/retests/" + c.case_id + "/recall.pdf",
        "召回单-" + c.pool_tube + ".pdf")),
    );
    return span;
  }

  function showCases(list) {
    fill("#cases", list.items, (tr, c) => {
      tr.dataset.case = c.case_id;
      if (c.overdue) { tr.className = "overdue"; }
      const count = (s) => c.members.filter((m) => m.status === s).length;
      cell(tr, "#" + c.case_id + (c.pool_result === "suspicious" ? " 可疑" : " 阳性"));
      cell(tr, c.pool_tube);
      cell(tr, c.sampling_point);
      cell(tr, hours(c.age_minutes) + (c.overdue ? " 超时" : ""), c.overdue ? "bad" : "");
      cell(tr, count("to-recall") + count("invalid") + " / " + count("resampled") + " / " +
        (count("negative") + count("positive")));
      cell(tr, caseActions(c));
    }, "无未结复核案");
  }

  function showDiscordant(list) {
    fill("#discordant", list.items, (tr, c) => {
      cell(tr, "#" + c.case_id); cell(tr, c.pool_tube); cell(tr, c.sampling_point); cell(tr, c.lab || "-");
    }, "无");
  }

  async function openCase(caseId) {
    let c;
    try { c = await api("/rounds/" + roundId + "/retests/" + caseId); } catch (e) {
      notice("读取复核案失败,请稍后重试。"); return;
    }
    text("#case-title", "复核案 #" + c.case_id + " · 混管 " + c.pool_tube);
    text("#case-facts", "采样点 " + c.sampling_point + " · 实验室 " + (c.lab || "-") + " · " +
      (c.pool_result === "suspicious" ? "可疑" : "阳性") + " · " + (STATUS[c.status] || c.status) +
      " · 开案 " + stamp(c.opened_at) + "(" + zone + ")" + (c.overdue ? " · 超时" : ""));
    fill("#case-members", c.members, (tr, m) => {
      cell(tr, m.resident_code); cell(tr, m.name_masked);
      cell(tr, (STATUS[m.status] || m.status) + (m.overdue ? " 超时" : ""), m.overdue ? "bad" : "");
      cell(tr, m.single_tube || "-");
    }, "无成员");
    const list = $("#case-history");
    list.replaceChildren();
    for (const h of c.history) {
      const li = document.createElement("li");
      li.textContent = stamp(h.at) + " " + (KINDS[h.kind] || h.kind) +
        (h.resident_code ? " · " + h.resident_code : "") +
        (h.to_status ? " → " + (STATUS[h.to_status] || h.to_status) : "");
      list.appendChild(li);
    }
    $("#case-recall").onclick = () => download(
      "/rounds/" + roundId + "/retests/" + c.case_id + "/recall.pdf", "召回单-" + c.pool_tube + ".pdf");
    $("#case").showModal();
  }

  // refreshes overlap (timer, feed, page buttons): only the newest one is drawn, so a
  // slow answer for page 1 never lands over page 2
  let latest = 0;
  async function refresh() {
    if (roundId === null) { return; }
    const mine = ++latest;
    try {
      const cursor = pointsCursors[pointsCursors.length - 1];
      const [p, points, open, review] = await Promise.all([
        api("/rounds/" + roundId + "/progress?points_limit=1"),
        api("/rounds/" + roundId + "/progress/sampling-points?limit=" + POINTS_PAGE +
          (cursor ? "&cursor=" + encodeURIComponent(cursor) : "")),
        api("/rounds/" + roundId + "/retests?status=open&limit=200"),
        api("/rounds/" + roundId + "/retests/review?limit=200"),
      ]);
      if (mine !== latest) { return; }
      showProgress(p); showPoints(points); showCases(open); showDiscordant(review);
      text("#updated", "更新于 " + clock(new Date().toISOString()) + "(" + zone + ")");
      document.body.dataset.loaded = "true";
      document.body.dataset.refreshed = String(Date.now());
    } catch (e) {
      if (mine !== latest) { return; }
      if (e.auth) { logout("令牌无效或无权限,请输入指挥中心令牌。"); } else { text("#updated", "刷新失败,稍后自动重试"); }
    }
  }
  function soon() { clearTimeout(refreshTimer); refreshTimer = setTimeout(refresh, 300); }

  function addEvent(data, atEnd) {
    if (shownEvents.has(data.id)) { return; }
    shownEvents.add(data.id);
    const li = document.createElement("li");
    li.dataset.event = data.id;
    li.textContent = clock(data.at) + " " + (KINDS[data.kind] || data.kind) + " #" + data.case_id + " · " +
      data.sampling_point + (data.resident_code ? " · " + data.resident_code : "");
    if (atEnd) { $("#events").append(li); } else { $("#events").prepend(li); }
    while ($("#events").children.length > 100) { $("#events").lastChild.remove(); }
  }

  async function loadRecent() {
    $("#events").replaceChildren(); shownEvents = new Set();
    try {
      const recent = await api("/rounds/" + roundId + "/events/recent?limit=30");
      for (const e of recent.items) { addEvent(e, true); }
      if (lastEvent === null) { lastEvent = String(recent.last_id); }
    } catch (e) { /* the feed still brings what comes next */ }
  }

  // the pill says "实时" only while the feed is open, and then the figures follow a timer
  function setLive(mode) {
    const pill = $("#live");
    pill.className = "pill " + mode;
    pill.textContent = mode === "live" ? "实时" : mode === "poll" ? "轮询" : "未连接";
    clearInterval(tickTimer);
    if (mode !== "off") { tickTimer = setInterval(refresh, mode === "live" ? LIVE_REFRESH_MS : POLL_MS); }
  }

  async function listen() {
    if (feedAbort) { feedAbort.abort(); }
    feedAbort = new AbortController();
    for (;;) {
      try {
        const headers = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
        const after = lastEvent !== null ? "?after=" + encodeURIComponent(lastEvent) : "";
        const r = await fetch(API + "/events" + after, { headers, signal: feedAbort.signal });
        if (!r.ok || !r.body) { throw new Error("feed " + r.status); }
        setLive("live"); refresh();
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) { break; }
          buffer += value;
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
            const fields = {};
            for (const line of frame.split("\n")) {
              const i = line.indexOf(": ");
              if (i > 0 && !line.startsWith(":")) { fields[line.slice(0, i)] = line.slice(i + 2); }
            }
            if (fields.id) { lastEvent = fields.id; }
            if (fields.data) {
              const data = JSON.parse(fields.data);
              if (data.round_id === roundId) { addEvent(data, false); soon(); }
            }
          }
        }
      } catch (e) {
        if (feedAbort.signal.aborted) { return; }
      }
      setLive("poll");
      await new Promise((ok) => setTimeout(ok, 5000));
    }
  }

  async function start() {
    let rounds;
    try { rounds = await api("/rounds?limit=1000"); } catch (e) {
      logout(e.auth ? "令牌无效或无权限,请输入指挥中心令牌。" : "服务暂时不可用,请稍后再试。"); return;
    }
    $("#login").hidden = true; $("#board").hidden = false; $("#report").hidden = false;
    const select = $("#round");
    select.replaceChildren();
    for (const r of rounds.items.slice().reverse()) {
      const o = document.createElement("option");
      o.value = r.id; o.textContent = r.name + (r.status === "open" ? "(进行中)" : "");
      select.appendChild(o);
    }
    const wanted = new URLSearchParams(location.search).get("round");
    if (wanted) { select.value = wanted; }
    roundId = select.value ? Number(select.value) : null;
    select.onchange = () => {
      roundId = Number(select.value); pointsCursors = [null]; loadRecent(); refresh();
    };
    if (roundId !== null) { await Promise.all([refresh(), loadRecent()]); }
    listen();
  }

  function logout(message) {
    sessionStorage.removeItem(KEY); token = "";
    if (feedAbort) { feedAbort.abort(); }
    setLive("off");
    $("#board").hidden = true; $("#login").hidden = false; $("#report").hidden = true;
    text("#login-error", message || "");
    $("#token").focus();
  }

  $("#report").addEventListener("click", () => {
    if (roundId !== null) { download("/rounds/" + roundId + "/report.pdf", "轮次报告-" + roundId + ".pdf"); }
  });
  $("#points-next").addEventListener("click", () => {
    const cursor = $("#points-next").dataset.cursor;
    if (cursor) { pointsCursors.push(cursor); refresh(); }
  });
  $("#points-prev").addEventListener("click", () => {
    if (pointsCursors.length > 1) { pointsCursors.pop(); refresh(); }
  });
  $("#case-close").addEventListener("click", () => $("#case").close());
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("#token").value.trim();
    sessionStorage.setItem(KEY, token);
    start();
  });
  if (token) { start(); } else { logout(""); }
})();
