// Sampling station: scan a tube, then residents' codes (or register a walk-in); works
// without a network.
// Online, each scan goes straight to POST /rounds/{id}/samples with its own event_id:
// the clerk sees the masked name and the service's count, or the refusal, before the
// swab. Offline (or while older scans wait), a scan is checked here (check character,
// capacity, already in this tube) and queued in IndexedDB; the queue goes out through
// POST /rounds/{id}/sync and an event leaves the device only once the service has
// accounted for it: applied, duplicate, or refused (then it is kept in the refused list
// with a Chinese sentence saying what to do). A whole batch refused keeps every event.
"use strict";
(function () {
  const API = "/api/v1";
  const R = window.StationRules, S = window.StationStore, V = window.StationVoice, Refused = window.StationRefused;
  const $ = (sel) => document.querySelector(sel);
  const state = JSON.parse(localStorage.getItem("station.state") || "{}");
  let online = false, flushing = null, scanning = false, batchSize = 500, lane = Promise.resolve();

  function save() { localStorage.setItem("station.state", JSON.stringify(state)); }
  function exclusive(fn) { const p = lane.then(fn); lane = p.catch(() => {}); return p; }
  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));

  // ---- what the clerk sees and hears
  function say(text, kind, next) {
    const m = $("#message"); m.textContent = text; m.className = "message " + (kind || "");
    $("#next").textContent = next || "";
    const panel = $("#tube-panel");
    panel.classList.remove("flash-ok", "flash-bad"); void panel.offsetWidth;
    if (kind === "ok" || kind === "bad") { panel.classList.add("flash-" + kind); V.beep(kind === "ok"); }
  }
  function refuse(type, extra) {
    const p = R.problemText(type);
    say(p.what + (extra || ""), "bad", p.next);
    V.speak(p.what);
  }
  function setNet(up) {
    online = up;
    const n = $("#net"); n.textContent = up ? "在线" : "离线"; n.className = "pill " + (up ? "ok" : "warn");
  }
  async function showPending() {
    const n = await S.queueSize();
    $("#pending").textContent = n;
    $("#pending-pill").className = "pill " + (n ? "warn" : "");
    return n;
  }
  function queueProblem(text) { const p = $("#queue-problem"); p.textContent = text || ""; p.hidden = !text; }

  // ---- the service
  async function api(path, options, timeoutMs) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs || 8000);
    try {
      return await fetch(API + path, {
        ...(options || {}), signal: abort.signal,
        headers: { Authorization: "Bearer " + state.token, "Content-Type": "application/json" },
      });
    } finally { clearTimeout(timer); }
  }
  async function problemOf(r) { try { return await r.json(); } catch (e) { return { type: "status-" + r.status }; } }
  // ---- tubes: the service's count plus this device's queued scans
  function capacityFor(kind) {
    if (kind === "single") { return 1; }
    const by = (state.roundInfo && state.roundInfo.pool_size_by_district) || {};
    return by[state.district] || (state.roundInfo ? state.roundInfo.pool_size : 10);
  }
  function blankTube(barcode, kind) {
    return { barcode, kind, capacity: capacityFor(kind), served: 0, members: [], sealed: false };
  }
  // ``record`` is what the service last said; the view adds this device's queued scans.
  async function tubeView(barcode) {
    const stored = await S.tube(barcode);
    const record = stored || blankTube(barcode, state.single ? "single" : $("#kind").value);
    const queued = await S.queuedFor(barcode);
    const samples = queued.filter((e) => e.type === "sample");
    return {
      ...record, record, fresh: !stored, pending: samples.length, count: record.served + samples.length,
      members: [...record.members, ...samples.map((e) => e.resident_code).filter(Boolean)],
      sealed: record.sealed || queued.some((e) => e.type === "seal"),
    };
  }
  // Ask the service about a tube (an issued one not used yet is "unused"; another
  // point's is 403, one not issued for this round 422): "ok", "offline", or "refused".
  async function askTube(barcode) {
    let r;
    try { r = await api("/rounds/" + state.round + "/tubes/" + barcode, {}, 5000); } catch (e) { setNet(false); return { status: "offline" }; }
    if (r.status >= 500) { setNet(false); return { status: "offline" }; }
    setNet(true);
    if (r.ok) {
      const body = await r.json();
      const t = await S.tube(barcode);
      if (body.state === "unused") {  // issued to this point for this round, not used yet
        const kind = (t && t.kind) || (state.single ? "single" : $("#kind").value);
        await S.putTube({ ...blankTube(barcode, kind), capacity: kind === "single" ? 1 : body.capacity });
      } else {
        await S.putTube({ ...(t || {}), barcode, kind: body.kind, capacity: body.capacity, served: body.count, sealed: body.state !== "open", members: body.members.map((m) => m.resident_code) });
      }
      return { status: "ok" };
    }
    return { status: "refused", problem: await problemOf(r) };
  }
  async function render() {
    const t = state.tube ? await tubeView(state.tube) : null;
    $("#tube").textContent = t ? t.barcode + (t.kind === "single" ? "(单管)" : "") : "请扫描试管条码";
    $("#count").textContent = t ? t.count : 0;
    $("#capacity").textContent = t ? t.capacity : "-";
    return t;
  }
  function showWho(name, position, capacity) {
    $("#who").textContent = name ? name + " 第 " + position + " 位" : "";
    const full = position >= capacity;
    V.speak((name ? R.spokenName(name) + "," : "") + "第" + position + "位" + (full ? "。满管,请换管" : ""));
  }

  // ---- scanning
  async function scan(raw) {
    const { kind, code, idType } = R.classify(raw);
    if (kind === "empty") { return; }
    $("#ask").hidden = true;  // scanning on answers an open question with "no change"
    if (kind === "tube") { return scanTube(code); }
    if (kind === "bad-tube") { say("试管条码校验错误,请重新扫描(" + code + ")", "bad", "仍不行请换一支试管"); return; }
    if (kind === "id-card" || kind === "bad-id-card") { Walkin.start(code, idType); return; }
    if (kind === "bad-resident") { refuse("bad-resident-code", "(" + code + ")"); return; }
    if (kind === "unknown") { say("无法识别的条码:" + code, "bad", "请扫描试管条码、居民码或身份证"); return; }
    return scanResident(code);
  }

  async function scanTube(code, confirmed) {
    if (code === state.tube) { await render(); say("已是当前试管 " + code, "ok", "请扫描居民码"); return; }
    if (online && !flushing) {
      const seen = await askTube(code);
      if (seen.status === "refused") {
        const p = seen.problem;
        refuse(p.type, "(" + code + ")"); return;
      }
    }
    const t = await tubeView(code);
    if (t.sealed || t.count >= t.capacity) { refuse(t.sealed ? "tube-sealed" : "tube-full", "(" + code + ")"); return; }
    const current = state.tube ? await tubeView(state.tube) : null;
    if (!confirmed && !state.single && current && !current.sealed && current.count > 0 && current.count < current.capacity) {
      ask("当前试管 " + current.barcode + " 已采 " + current.count + "/" + current.capacity + " 人,还没封管。先封管吗?", [
        ["先封管,再换新管", async () => { await sealTube(); await scanTube(code, true); }],
        ["不封管,直接换管", () => scanTube(code, true)],
        ["取消", () => say("仍用试管 " + current.barcode, "", "请扫描居民码")],
      ]);
      V.beep(false); V.speak("当前试管未满,先封管吗");
      return;
    }
    $("#kind").value = t.kind;
    state.tube = code; save(); await S.putTube(t.record); await render();
    $("#who").textContent = "";
    if (state.single) {
      say("已选单管 " + code, "ok", "正在为刚才这位居民登记单管");
      await scanResident(state.single.code);
      if (state.single) {  // refused in this tube: another single tube, or give up
        ask("单管没有采成。换一支单管再扫描,或回到原来的混管?", [["回到混管", endSingle]]);
      }
      return;
    }
    say("已选试管 " + code, "ok", "请扫描居民码");
  }

  async function scanResident(code, walkin) {
    if (!state.tube) { say("请先扫描试管条码", "bad", "扫描一支新试管后再扫居民码"); return; }
    const t = await tubeView(state.tube);
    if (code && t.members.includes(code)) { refuse("already-in-tube"); return; }
    if (t.sealed || t.count >= t.capacity) { refuse(t.count >= t.capacity ? "tube-full" : "tube-sealed"); return; }
    const event = { event_id: newId(), at: new Date().toISOString(), type: "sample", tube: t.barcode, kind: t.kind, round: state.round };
    if (walkin) { event.resident = walkin; } else { event.resident_code = code; }
    if (!walkin && online && !flushing && (await S.queueSize()) === 0) {
      scanning = true;
      try { if (await sampleOnline(t, event)) { return; } } finally { scanning = false; }
    }
    await S.enqueue(event);  // offline, or older scans still waiting: the queue keeps order
    await showPending();
    const view = await tubeView(t.barcode);
    await render();
    const name = walkin ? R.maskName(walkin.name) : "";
    say((walkin ? "已登记无码人员 " + name + "," : "已记录 ") + view.count + "/" + view.capacity + (online ? "" : "(离线,联网后上传)"), "ok",
      view.count >= view.capacity ? "满管,请换管" : "请扫描下一位");
    showWho(name, view.count, view.capacity);
    if (view.count >= view.capacity) { await tubeFilled(view, true); }
    flush();
  }

  // One scan straight to the service. True when the service answered (taken or refused);
  // false when it could not be reached (the caller queues the same event_id instead).
  async function sampleOnline(t, event) {
    let r;
    try {
      r = await api("/rounds/" + state.round + "/samples", { method: "POST", body: JSON.stringify({ tube: event.tube, resident_code: event.resident_code, kind: event.kind, event_id: event.event_id }) }, 5000);
    } catch (e) { setNet(false); return false; }
    if (r.status >= 500 || r.status === 401) { if (r.status === 401) { relogin(); } else { setNet(false); } return false; }
    setNet(true);
    if (r.status === 201 || r.status === 200) {
      const body = await r.json();
      const record = (await S.tube(t.barcode)) || {};
      await S.putTube({ ...record, barcode: t.barcode, kind: body.kind, capacity: body.capacity, served: body.count, sealed: Boolean(body.full) || Boolean(record.sealed), members: [...(record.members || []), event.resident_code] });
      const name = (body.resident && body.resident.name_masked) || "";
      await render();
      say("已登记 " + body.count + "/" + body.capacity, "ok", body.full ? "满管,请换管" : "请扫描下一位");
      showWho(name, body.count, body.capacity);
      if (body.full) { await tubeFilled({ ...t, count: body.count }, false); }
      return true;
    }
    const problem = await problemOf(r);
    await askTube(t.barcode);  // the count shown is the service's, whatever was refused
    await render();
    $("#who").textContent = "";
    if (problem.type === "needs-single") {
      refuse("needs-single");
      ask("此人必须单人单管采样。现在为此人取一支单管吗?", [
        ["改用单管采样", () => beginSingle(event.resident_code)],
        ["暂不采样", () => say("未采样,请下一位", "", "请扫描下一位居民码")],
      ]);
      return true;
    }
    if (["bad-barcode", "forbidden", "tube-full", "tube-sealed"].includes(problem.type)) {
      state.tube = null; save(); await render();  // this tube takes no more: the clerk needs another
    }
    refuse(problem.type, problem.type === "already-sampled" ? Refused.whereWhen(problem) : "");
    return true;
  }

  async function tubeFilled(view, sendSeal) {
    // A tube full on this device is sealed at the service too, by an event: its
    // last swab went in, so it is capped whatever the service later refuses.
    if (sendSeal) { await S.enqueue({ event_id: newId(), at: new Date().toISOString(), type: "seal", tube: view.barcode, round: state.round }); await showPending(); }
    state.tube = null; save();
    if (state.single) { await endSingle(); say("单管已采完,回到混管" + (state.tube ? " " + state.tube : ""), "ok", "请扫描下一位"); }
    await render();
  }
  async function endSingle() {
    const back = state.single && state.single.back;
    state.single = null; state.tube = null; $("#kind").value = "pool"; save();
    if (back) { const b = await tubeView(back); if (!b.sealed && b.count < b.capacity) { state.tube = back; save(); } }
    await render();
  }

  function beginSingle(code) {
    state.single = { code, back: state.tube }; state.tube = null; save();
    $("#kind").value = "single"; render();
    say("请扫描一支新的单管试管", "", "扫描后自动为此人登记,采完回到原混管");
  }

  async function sealTube() {
    if (!state.tube) { say("没有正在使用的试管", "bad"); return; }
    const t = await tubeView(state.tube);
    if (t.count === 0) { refuse("tube-empty"); return; }
    await S.enqueue({ event_id: newId(), at: new Date().toISOString(), type: "seal", tube: t.barcode, round: state.round });
    state.tube = null; save(); await render(); await showPending();
    $("#who").textContent = "";
    say("已封管 " + t.barcode + "(" + t.count + " 人)", "ok", "请扫描新试管");
    flush();
  }

  // ---- questions asked on the page (never window.confirm: it would stop the scanner)
  function ask(text, choices) {
    $("#ask-text").textContent = text;
    const box = $("#ask-choices"); box.replaceChildren();
    for (const [label, action] of choices) {
      const b = document.createElement("button"); b.type = "button"; b.textContent = label;
      b.onclick = () => { $("#ask").hidden = true; exclusive(action).then(() => $("#scan").focus()); };
      box.appendChild(b);
    }
    $("#ask").hidden = false;
  }

  // ---- the queue
  function flush() {
    if (flushing || scanning || !state.round || !state.token) { return flushing || Promise.resolve(); }
    flushing = flushNow().finally(() => { flushing = null; });
    return flushing;
  }
  async function flushNow() {
    for (;;) {
      const head = await S.queued(batchSize);
      if (!head.length) { queueProblem(""); return; }
      const round = head[0].round || state.round;  // a batch never mixes rounds
      const cut = head.findIndex((e) => (e.round || state.round) !== round);
      const events = cut < 0 ? head : head.slice(0, cut);
      let r;
      try {
        const body = JSON.stringify({ events: events.map(({ seq, round: _, ...e }) => e) });
        r = await api("/rounds/" + round + "/sync", { method: "POST", body }, 20000);
      } catch (e) { setNet(false); return; }
      if (r.status >= 500) { setNet(false); return; }
      setNet(true);
      if (r.status === 413 && batchSize > 1) { batchSize = Math.ceil(batchSize / 2); continue; }
      if (!r.ok) {  // the whole batch refused: every event stays on the device
        const p = await problemOf(r); const t = R.problemText(p.type);
        queueProblem("有 " + (await S.queueSize()) + " 条记录暂时没能上传:" + t.what + "。记录都保留在本机,不会丢失;" + t.next + "。");
        if (r.status === 401) { relogin(); }
        return;
      }
      const settled = await settle(events, await r.json());
      if (!settled) { return; }
      batchSize = 500;
    }
  }
  async function settle(events, answer) {
    const rejected = new Map((answer.rejected || []).map((x) => [x.event_id, x]));
    const registered = new Map((answer.registered || []).map((x) => [x.event_id, x.resident_code]));
    const complete = answer.applied + answer.duplicates + rejected.size === events.length;
    const accounted = complete ? events : events.filter((e) => rejected.has(e.event_id));
    const tubes = new Map(), refusedItems = [];
    for (const e of accounted) {
      const t = tubes.get(e.tube) || (await S.tube(e.tube)) || { barcode: e.tube, kind: e.kind || "pool", capacity: capacityFor(e.kind || "pool"), served: 0, members: [], sealed: false };
      tubes.set(e.tube, t);
      const no = rejected.get(e.event_id);
      if (no) { refusedItems.push(Refused.item(e, no)); continue; }
      if (e.type === "seal") { t.sealed = true; continue; }
      t.served += 1;
      const code = e.resident_code || registered.get(e.event_id);
      if (code) { t.members.push(code); }
      if (t.served >= t.capacity) { t.sealed = true; }
    }
    await S.settle(accounted, refusedItems, [...tubes.values()]);
    if (state.tube && tubes.has(state.tube)) { await askTube(state.tube); }
    await render(); await showPending(); await Refused.show();
    if (refusedItems.length) {
      const last = refusedItems[refusedItems.length - 1];
      say("有 " + refusedItems.length + " 条记录被拒绝:" + last.what + last.extra, "bad", last.next + "(详见下方“被拒绝的记录”)");
    } else if (registered.size) {
      say("无码人员已登记,居民码 " + [...registered.values()].join("、"), "ok", "请扫描下一位");
    }
    if (!complete) { queueProblem("服务的回答与上传的记录数对不上;未确认的 " + (events.length - accounted.length) + " 条记录保留在本机,稍后重新上传。"); }
    return complete;
  }
  // ---- signing in and out
  async function start() {
    const me = await api("/tokens/me").catch(() => null);
    if (me && me.ok) {
      const who = await me.json();
      if (who.role !== "sampler") { logout("请使用采样员令牌登录"); return; }
      state.district = who.district; state.point = who.sampling_point;
      const [rounds, labs, points] = await Promise.all(["/rounds?limit=1000", "/labs?limit=1000", "/sampling-points?limit=1000"].map((p) => api(p).then((r) => r.json())));
      // open rounds first; closed ones stay choosable (their last tubes are sealed and
      // boxed, late offline scans and single re-tests still go to them)
      const open = rounds.items.filter((r) => r.status === "open"), closed = rounds.items.filter((r) => r.status !== "open");
      state.rounds = [...open, ...closed.slice(-5).reverse()];
      state.labs = labs.items.map((l) => [l.code, l.name]);
      state.pointName = ((points.items || []).find((p) => p.code === who.sampling_point) || {}).name || "";
      save(); setNet(true);
    } else if (me && (me.status === 401 || me.status === 403)) {
      logout("令牌无效或已被吊销,请重新登录"); return;
    } else { setNet(false); }  // offline: carry on with what this device knows
    $("#login").hidden = true; $("#desk").hidden = false; $("#logout").hidden = false;
    $("#point").textContent = "采样点 " + (state.point || "") + (state.pointName ? " " + state.pointName : "");
    const select = $("#round"); select.replaceChildren();
    for (const r of state.rounds || []) { const o = document.createElement("option"); o.value = r.id; o.textContent = r.name + (r.status === "open" ? "" : "(已结束)"); select.appendChild(o); }
    if (state.round) { select.value = state.round; }
    const labs = $("#lab"); labs.replaceChildren();
    for (const [code, name] of state.labs || []) { const o = document.createElement("option"); o.value = code; o.textContent = code + " " + name; labs.appendChild(o); }
    const chosen = () => { state.round = Number(select.value) || null; state.roundInfo = (state.rounds || []).find((r) => r.id === state.round) || null; save(); };
    chosen(); select.onchange = chosen;
    if (state.tube && online) { await askTube(state.tube); }
    await render(); await showPending(); await Refused.show();
    $("#scan").focus();
    flush();
  }
  function relogin() { logout("令牌无效或已被吊销,请重新登录;未上传的记录保留在本机"); }
  async function logout(message) {
    for (const key of Object.keys(state)) { delete state[key]; }
    save();
    $("#token").value = ""; $("#point").textContent = ""; $("#logout").hidden = true;
    $("#desk").hidden = true; $("#login").hidden = false;
    const n = await S.queueSize();
    $("#login-error").textContent = (message || "") + (n ? (message ? " " : "") + "本机还有 " + n + " 条记录未上传,已保留;用本采样点令牌登录后自动上传。" : "");
  }

  $("#scan").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") { return; }
    e.preventDefault();
    const value = e.target.value; e.target.value = "";
    exclusive(() => scan(value));
  });
  $("#seal").addEventListener("click", () => exclusive(sealTube));
  $("#logout").addEventListener("click", () => logout("已退出登录"));
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault(); state.token = $("#token").value.trim(); $("#token").value = ""; save(); start();
  });
  const Walkin = window.StationWalkin.attach({ say, beep: V.beep, hasTube: () => Boolean(state.tube), take: (person) => exclusive(() => scanResident(null, person)) });
  window.StationBox.attach({ api, flush, pendingCount: S.queueSize, beep: V.beep });
  // Offline with nothing queued, ask now and then whether the service is back, so tube
  // scans are checked by it again as soon as it is.
  async function probe() {
    if (online || flushing || !state.token) { return; }
    try { setNet((await fetch("/healthz", { cache: "no-store" })).ok); } catch (e) { setNet(false); }
  }
  window.addEventListener("online", () => flush());
  setInterval(async () => { if ((await S.queueSize()) > 0) { flush(); } else { probe(); } }, 3000);
  if ("serviceWorker" in navigator) { navigator.serviceWorker.register("/station-sw.js"); }
  S.open().then(() => { if (state.token) { start(); } else { logout(""); } });
})();
