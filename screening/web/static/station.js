// Sampling station: scan a tube, then residents' codes; works without a network.
// Every scan becomes an event (with its own event_id) in a queue kept in IndexedDB,
// then goes out through POST /rounds/{id}/sync whenever the service answers, so a
// reload, a dead network or a stopped service loses nothing and doubles nothing.
// Capacity and "already in this tube" are checked here, offline too.
"use strict";
(function () {
  const API = "/api/v1";
  const $ = (sel) => document.querySelector(sel);
  const BARCODE = /^\d{14}$/;
  const state = JSON.parse(localStorage.getItem("station.state") || "{}");
  let db = null;
  let flushing = false;

  function save() { localStorage.setItem("station.state", JSON.stringify(state)); }

  function openDb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open("station", 1);
      req.onupgradeneeded = () => {
        req.result.createObjectStore("queue", { keyPath: "seq", autoIncrement: true });
        req.result.createObjectStore("tubes", { keyPath: "barcode" });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  function store(name, mode) { return db.transaction(name, mode).objectStore(name); }
  function request(r) { return new Promise((ok, bad) => { r.onsuccess = () => ok(r.result); r.onerror = () => bad(r.error); }); }

  // ISO 7064 MOD 11-10, as on the tube labels
  function barcodeOk(code) {
    let p = 10;
    for (let i = 0; i < 13; i++) {
      let s = (Number(code[i]) + p) % 10;
      if (s === 0) { s = 10; }
      p = (s * 2) % 11;
    }
    return (11 - p) % 10 === Number(code[13]);
  }

  function beep(ok) {
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const o = ctx.createOscillator(); const g = ctx.createGain();
      o.frequency.value = ok ? 880 : 220; o.type = ok ? "sine" : "square";
      o.connect(g); g.connect(ctx.destination); g.gain.value = 0.15;
      o.start(); o.stop(ctx.currentTime + (ok ? 0.08 : 0.4));
    } catch (e) { /* no sound on this device */ }
  }
  function say(text, kind) {
    const m = $("#message"); m.textContent = text; m.className = "message " + (kind || "");
    const panel = $("#tube-panel");
    panel.classList.remove("flash-ok", "flash-bad"); void panel.offsetWidth;
    if (kind === "ok" || kind === "bad") { panel.classList.add(kind === "ok" ? "flash-ok" : "flash-bad"); beep(kind === "ok"); }
  }

  async function pending() {
    const n = await request(store("queue", "readonly").count());
    $("#pending").textContent = n;
    return n;
  }
  function showTube(t) {
    $("#tube").textContent = t ? t.barcode + (t.kind === "single" ? "(单管)" : "") : "请扫描试管条码";
    $("#count").textContent = t ? t.members.length : 0;
    $("#capacity").textContent = t ? t.capacity : "-";
  }
  function setNet(online) {
    const n = $("#net"); n.textContent = online ? "在线" : "离线"; n.className = "pill " + (online ? "ok" : "warn");
  }

  async function api(path, options) {
    const r = await fetch(API + path, {
      ...(options || {}),
      headers: { Authorization: "Bearer " + state.token, "Content-Type": "application/json" },
    });
    return r;
  }

  function capacityFor(kind) {
    if (kind === "single") { return 1; }
    const by = state.roundInfo && state.roundInfo.pool_size_by_district || {};
    return by[state.district] || (state.roundInfo ? state.roundInfo.pool_size : 10);
  }

  async function tubeRecord(barcode) {
    let t = await request(store("tubes", "readonly").get(barcode));
    if (t) { return t; }
    t = { barcode, kind: $("#kind").value, capacity: capacityFor($("#kind").value), members: [], sealed: false, known: 0 };
    try {  // online: learn what the service already holds for this tube
      const r = await api("/rounds/" + state.round + "/tubes/" + barcode);
      if (r.ok) {
        const body = await r.json();
        t.kind = body.kind; t.capacity = body.capacity; t.known = body.count;
        t.sealed = body.state !== "open";
      }
    } catch (e) { /* offline: what this device knows */ }
    return t;
  }
  async function putTube(t) { await request(store("tubes", "readwrite").put(t)); }
  function countOf(t) { return t.known + t.members.length; }

  async function enqueue(event) {
    event.event_id = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
    event.at = new Date().toISOString();
    await request(store("queue", "readwrite").add(event));
    await pending();
    flush();
  }

  async function scan(raw) {
    const code = raw.trim().toUpperCase();
    if (!code) { return; }
    if (BARCODE.test(code)) {
      if (!barcodeOk(code)) { say("试管条码校验错误,请重新扫描 (" + code + ")", "bad"); return; }
      const t = await tubeRecord(code);
      if (t.sealed || countOf(t) >= t.capacity) { say("此管已封或已满,请换新管", "bad"); return; }
      state.tube = code; save(); await putTube(t);
      showTube({ ...t, members: Array(countOf(t)) });
      say("已选试管 " + code + ",请扫描居民码", "ok");
      return;
    }
    if (/^\d+$/.test(code)) { say("条码无法识别(位数不对):" + code, "bad"); return; }
    if (!state.tube) { say("请先扫描试管条码", "bad"); return; }
    const t = await tubeRecord(state.tube);
    if (t.members.includes(code)) { say("此人已在本管中", "bad"); return; }
    if (countOf(t) >= t.capacity) { say("试管已满,请换新管", "bad"); return; }
    t.members.push(code);
    await putTube(t);
    await enqueue({ type: "sample", tube: t.barcode, resident_code: code, kind: t.kind });
    const full = countOf(t) >= t.capacity;
    showTube({ ...t, members: Array(countOf(t)) });
    if (full) {
      t.sealed = true; await putTube(t);
      state.tube = null; save();
      say("试管已满并封管 (" + t.capacity + "/" + t.capacity + "),请扫描新试管", "ok");
    } else {
      say("已登记 " + countOf(t) + "/" + t.capacity, "ok");
    }
  }

  async function seal() {
    if (!state.tube) { say("没有正在使用的试管", "bad"); return; }
    const t = await tubeRecord(state.tube);
    t.sealed = true; await putTube(t);
    await enqueue({ type: "seal", tube: t.barcode });
    state.tube = null; save(); showTube(null);
    say("已封管 " + t.barcode, "ok");
  }

  async function flush() {
    if (flushing || !state.round) { return; }
    flushing = true;
    try {
      for (;;) {
        const events = (await request(store("queue", "readonly").getAll())).slice(0, 500);
        if (!events.length) { break; }
        let r;
        try {
          r = await api("/rounds/" + state.round + "/sync", {
            method: "POST",
            body: JSON.stringify({ events: events.map(({ seq, ...e }) => e) }),
          });
        } catch (e) { setNet(false); break; }
        if (r.status >= 500 || r.status === 0) { setNet(false); break; }
        setNet(true);
        if (r.status === 401 || r.status === 403) { say("令牌无效或无权限,请重新登录", "bad"); break; }
        if (r.ok) {
          const answer = await r.json();
          for (const rej of answer.rejected) {
            const li = document.createElement("li");
            const ev = events.find((e) => e.event_id === rej.event_id) || {};
            li.textContent = (ev.resident_code || ev.tube || "") + ":" + rej.type + " " + (rej.detail || "");
            $("#refused").prepend(li);
          }
          if (answer.rejected.length) { say("有 " + answer.rejected.length + " 条记录被拒绝,见下方", "bad"); }
        }
        const tx = store("queue", "readwrite");
        for (const e of events) { tx.delete(e.seq); }
        await new Promise((ok) => { tx.transaction.oncomplete = ok; });
        await pending();
      }
    } finally { flushing = false; }
  }

  async function start() {
    const me = await api("/tokens/me").catch(() => null);
    if (me && me.ok) {
      const who = await me.json();
      if (who.role !== "sampler") { logout("请使用采样员令牌"); return; }
      state.district = who.district; state.point = who.sampling_point;
      const rounds = await (await api("/rounds?limit=1000")).json();
      state.rounds = rounds.items.filter((r) => r.status === "open");
      state.labs = (await (await api("/labs?limit=1000")).json()).items.map((l) => [l.code, l.name]);
      save();
      setNet(true);
    } else if (me && (me.status === 401 || me.status === 403)) {
      logout("令牌无效"); return;
    } else {
      setNet(false);  // offline: carry on with what this device knows
    }
    $("#login").hidden = true; $("#desk").hidden = false;
    const select = $("#round");
    select.replaceChildren();
    for (const r of state.rounds || []) {
      const o = document.createElement("option"); o.value = r.id; o.textContent = r.name;
      select.appendChild(o);
    }
    if (state.round) { select.value = state.round; }
    const labs = $("#lab"); labs.replaceChildren();
    for (const [code, name] of state.labs || []) {
      const o = document.createElement("option"); o.value = code; o.textContent = code + " " + name; labs.appendChild(o);
    }
    const chosen = () => {
      state.round = Number(select.value) || null;
      state.roundInfo = (state.rounds || []).find((r) => r.id === state.round) || null;
      save();
    };
    chosen();
    select.onchange = chosen;
    showTube(state.tube ? await tubeRecord(state.tube).then((t) => ({ ...t, members: Array(countOf(t)) })) : null);
    await pending();
    $("#scan").focus();
    flush();
  }
  function logout(message) {
    state.token = null; save();
    $("#desk").hidden = true; $("#login").hidden = false;
    $("#login-error").textContent = message || "";
  }

  $("#scan").addEventListener("keydown", async (e) => {
    if (e.key !== "Enter") { return; }
    e.preventDefault();
    const value = e.target.value; e.target.value = "";
    await scan(value);
  });
  $("#seal").addEventListener("click", seal);

  // boxes: online only (the service checks every tube is sealed and not boxed yet)
  let boxed = [];
  function boxSay(text, kind) { const m = $("#box-message"); m.textContent = text; m.className = "message " + (kind || ""); }
  $("#box").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") { return; }
    e.preventDefault(); boxed = []; $("#boxed").textContent = "0"; $("#box-tube").focus();
    boxSay("请逐一扫描装箱试管");
  });
  $("#box-tube").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") { return; }
    e.preventDefault();
    const code = e.target.value.trim(); e.target.value = "";
    if (!BARCODE.test(code) || !barcodeOk(code)) { boxSay("试管条码校验错误:" + code, "bad"); beep(false); return; }
    if (!boxed.includes(code)) { boxed.push(code); beep(true); }
    $("#boxed").textContent = boxed.length;
  });
  $("#dispatch").addEventListener("click", async () => {
    const box = $("#box").value.trim();
    if (!box || !boxed.length) { boxSay("请先扫描转运箱和试管", "bad"); return; }
    await flush();
    if (Number($("#pending").textContent) > 0) { boxSay("还有未上传的扫码,联网后再装箱", "bad"); return; }
    try {
      let r = await api("/boxes", { method: "POST", body: JSON.stringify({ barcode: box, lab: $("#lab").value, tubes: boxed }) });
      if (!r.ok) { const p = await r.json(); boxSay("装箱失败:" + (p.detail || p.title), "bad"); beep(false); return; }
      r = await api("/boxes/" + encodeURIComponent(box) + "/dispatch", { method: "POST", body: "{}" });
      if (!r.ok) { const p = await r.json(); boxSay("发运失败:" + (p.detail || p.title), "bad"); beep(false); return; }
      boxSay("已发运 " + box + "(" + boxed.length + " 管)", "ok"); beep(true);
      boxed = []; $("#boxed").textContent = "0"; $("#box").value = "";
    } catch (e) { boxSay("需要网络才能装箱发运", "bad"); beep(false); }
  });
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault(); state.token = $("#token").value.trim(); save(); start();
  });
  window.addEventListener("online", flush);
  setInterval(flush, 3000);
  if ("serviceWorker" in navigator) { navigator.serviceWorker.register("/station-sw.js"); }
  openDb().then((d) => { db = d; if (state.token) { start(); } else { logout(""); } });
})();
