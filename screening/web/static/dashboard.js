// Command-center dashboard: figures from /rounds/{id}/progress and the de-pool lists,
// kept live by the /events feed (read with fetch, so the token stays in a header),
// falling back to polling every 10 s when the feed is not available.
"use strict";
(function () {
  const API = "/api/v1";
  const KEY = "screening.admin-token";
  const $ = (sel) => document.querySelector(sel);
  const fmt = new Intl.NumberFormat("zh-CN");
  const KINDS = {
    "case-opened": "新复核案", "member-resampled": "已单采", "member-resulted": "单管出结果",
    "case-resolved": "复核结案", "case-overdue": "复核超时", "member-overdue": "召回超时",
  };
  let token = sessionStorage.getItem(KEY) || "";
  let roundId = null;
  let refreshTimer = null;
  let pollTimer = null;
  let feedAbort = null;

  async function api(path) {
    const r = await fetch(API + path, { headers: { Authorization: "Bearer " + token } });
    if (r.status === 401 || r.status === 403) { throw Object.assign(new Error("token"), { auth: true }); }
    if (!r.ok) { throw new Error(path + ": " + r.status); }
    return r.json();
  }

  function text(sel, value) { const el = $(sel); if (el) { el.textContent = value; } }
  function n(value) { return value === null || value === undefined ? "-" : fmt.format(value); }
  function pct(value) { return value === null || value === undefined ? "-" : (value * 100).toFixed(1) + "%"; }
  function hours(minutes) { return (minutes / 60).toFixed(1) + " h"; }
  function cell(row, value, cls) {
    const td = document.createElement("td");
    if (value instanceof Node) { td.appendChild(value); } else { td.textContent = value; }
    if (cls) { td.className = cls; }
    row.appendChild(td);
  }
  function bar(share) {
    const outer = document.createElement("div");
    outer.className = "bar" + (share >= 1 ? " full" : "");
    const inner = document.createElement("div");
    inner.style.width = Math.min(100, Math.round((share || 0) * 100)) + "%";
    outer.appendChild(inner);
    return outer;
  }
  function fill(tableSel, rows, render, empty) {
    const body = $(tableSel + " tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      cell(tr, empty, "empty");
      tr.firstChild.colSpan = $(tableSel + " thead tr").children.length;
      body.appendChild(tr);
    }
    for (const item of rows) { const tr = document.createElement("tr"); render(tr, item); body.appendChild(tr); }
  }

  function showProgress(p) {
    text("[data-testid=registered]", n(p.registered));
    text("[data-testid=population]", n(p.population));
    $("#coverage-bar").style.width = Math.min(100, p.population ? 100 * p.registered / p.population : 0) + "%";
    text("[data-testid=tested]", n(p.tubes.tested));
    text("[data-testid=in-transit]", n(p.tubes.in_transit));
    text("[data-testid=received]", n(p.tubes.received));
    text("[data-testid=positive-pools]", n(p.results.positive + p.results.suspicious));
    text("[data-testid=invalid]", n(p.results.invalid));
    text("[data-testid=confirmed]", n(p.confirmed_positive));
    text("[data-testid=open-cases]", n(p.retests.open));
    text("[data-testid=overdue-cases]", n(p.retests.overdue));
    text("[data-testid=resolved-cases]", n(p.retests.resolved));
    text("[data-testid=boxes-late]", n(p.boxes_late));
    const t = p.turnaround_hours;
    text("[data-testid=tat]", t.p50 === null ? "-" : t.p50 + " / " + t.p95);
    fill("#districts", p.districts, (tr, d) => {
      tr.dataset.district = d.district;
      cell(tr, d.district + " " + d.name);
      cell(tr, n(d.registered) + " / " + n(d.population));
      const wrap = document.createElement("div");
      wrap.append(pct(d.coverage), bar(d.coverage));
      cell(tr, wrap);
      cell(tr, n(d.results.positive + d.results.suspicious));
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
      cell(tr, l.turnaround_hours.p50 === null ? "-" : l.turnaround_hours.p50 + " / " + l.turnaround_hours.p95);
    }, "尚无实验室收样");
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
    }, "无未结复核案");
  }

  function showDiscordant(list) {
    fill("#discordant", list.items, (tr, c) => {
      cell(tr, "#" + c.case_id); cell(tr, c.pool_tube); cell(tr, c.sampling_point); cell(tr, c.lab || "-");
    }, "无");
  }

  async function refresh() {
    if (roundId === null) { return; }
    try {
      const [p, open, review] = await Promise.all([
        api("/rounds/" + roundId + "/progress?points_limit=1"),
        api("/rounds/" + roundId + "/retests?status=open&limit=200"),
        api("/rounds/" + roundId + "/retests/review?limit=200"),
      ]);
      showProgress(p); showCases(open); showDiscordant(review);
      text("#updated", "更新于 " + new Date().toLocaleTimeString("zh-CN"));
      document.body.dataset.loaded = "true";
    } catch (e) {
      if (e.auth) { logout("令牌无效或无权限"); } else { text("#updated", "刷新失败,稍后重试"); }
    }
  }
  function soon() { clearTimeout(refreshTimer); refreshTimer = setTimeout(refresh, 300); }

  function addEvent(data) {
    const li = document.createElement("li");
    const at = new Date(data.at).toLocaleTimeString("zh-CN");
    li.textContent = at + " " + (KINDS[data.kind] || data.kind) + " #" + data.case_id + " · " +
      data.sampling_point + (data.resident_code ? " · " + data.resident_code : "");
    $("#events").prepend(li);
    while ($("#events").children.length > 100) { $("#events").lastChild.remove(); }
  }

  function setLive(mode) {
    const pill = $("#live");
    pill.className = "pill " + mode;
    pill.textContent = mode === "live" ? "实时" : mode === "poll" ? "轮询" : "未连接";
  }

  function poll() { setLive("poll"); clearInterval(pollTimer); pollTimer = setInterval(refresh, 10000); }

  async function listen() {
    if (feedAbort) { feedAbort.abort(); }
    feedAbort = new AbortController();
    let last = null;
    for (;;) {
      try {
        const headers = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
        if (last !== null) { headers["Last-Event-ID"] = last; }
        const r = await fetch(API + "/events", { headers, signal: feedAbort.signal });
        if (!r.ok || !r.body) { throw new Error("feed " + r.status); }
        setLive("live"); clearInterval(pollTimer);
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
            if (fields.id) { last = fields.id; }
            if (fields.data) {
              const data = JSON.parse(fields.data);
              if (data.round_id === roundId) { addEvent(data); soon(); }
            }
          }
        }
      } catch (e) {
        if (feedAbort.signal.aborted) { return; }
      }
      poll();
      await new Promise((ok) => setTimeout(ok, 5000));
    }
  }

  async function start() {
    let rounds;
    try { rounds = await api("/rounds?limit=1000"); } catch (e) { logout(e.auth ? "令牌无效或无权限" : "服务不可用"); return; }
    $("#login").hidden = true; $("#board").hidden = false;
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
    select.onchange = () => { roundId = Number(select.value); $("#events").replaceChildren(); refresh(); };
    await refresh();
    listen();
  }

  function logout(message) {
    sessionStorage.removeItem(KEY); token = "";
    $("#board").hidden = true; $("#login").hidden = false;
    text("#login-error", message || "");
    $("#token").focus();
  }

  $("#login").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("#token").value.trim();
    sessionStorage.setItem(KEY, token);
    start();
  });
  if (token) { start(); } else { logout(""); }
})();
