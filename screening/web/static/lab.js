// Lab page: receive a box by scanning it and its tubes (unusable tubes rejected with a
// reason), upload instrument files (one or many, format detected by the service, a
// plate id for files that carry none) and read back each file's summary, the plates
// waiting for a re-run, and the day's uploads. Every message is Chinese and says what
// to do; back-end text is never shown. The lab token stays in this tab.
"use strict";
(function () {
  const API = "/api/v1";
  const $ = (sel) => document.querySelector(sel);
  const TZ = document.documentElement.dataset.tz || "Asia/Shanghai";
  let token = sessionStorage.getItem("lab.token") || "";
  let lab = null;
  let scanned = [];
  let rejected = [];

  const PROBLEMS = {
    "unauthenticated": "令牌无效或已过期:请重新登录。",
    "forbidden": "此操作不属于本实验室:请核对转运箱或实验室。",
    "not-found": "未找到:请核对条码后重新扫描。",
    "unreadable-file": "文件无法读取:请从仪器重新导出结果文件(CSV、TXT 或 XLSX)后再上传。",
    "payload-too-large": "文件过大:请按板拆分后分别上传。",
    "invalid-request": "填写有误:请检查试管条码和原因后重试。",
    "bad-barcode": "试管条码无法识别:请重新扫描。",
    "duplicate": "该转运箱仍在使用中:请换用其他转运箱。",
    "conflict": "该试管未装箱或已有结果,不能拒收:请核对条码。",
    "database-unavailable": "服务暂时不可用:请稍后重试。",
    "too-many-requests": "操作过于频繁:请稍后重试。",
    "server-busy": "服务器正忙(同时上传的文件太多):文件未保存,请稍等几秒后重新上传。",
  };
  const ROW_PROBLEMS = {
    "unknown-tube": "试管条码未登记:请核对样本名",
    "tube-not-received": "试管不在本实验室:请先收样",
    "tube-rejected": "该管收样时已拒收:其人员需重新采样",
    "bad-ct": "Ct 值不是 0-50 的数字:请核对后重新导出",
    "bad-well": "孔位超出板面:请核对孔位",
    "well-conflict": "同一孔位出现两个样本:请核对排板",
    "unknown-target": "检测靶标不属于本实验室试剂盒:请核对试剂盒设置",
    "no-plate": "文件未写板号:请在上方填写板号后重新上传",
    "bad-role": "孔的类型无法识别:应为样本、阴性对照或阳性对照",
    "bad-cell": "单元格内容过长或含有非法字符:请重新导出",
  };

  function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) { e.textContent = text; } if (cls) { e.className = cls; } return e; }
  function localTime(iso) {
    if (!iso) { return "-"; }
    return new Date(iso).toLocaleString("zh-CN", { timeZone: TZ, hour12: false, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  }
  async function api(path, options) {
    return fetch(API + path, { ...(options || {}), headers: { Authorization: "Bearer " + token, ...((options || {}).headers || {}) } });
  }
  async function problem(r) {
    let type = "";
    try { type = (await r.json()).type || ""; } catch (e) { type = ""; }
    return PROBLEMS[type] || (r.status >= 500 ? "服务出错:请稍后重试,仍不行请联系技术支持。" : "操作未完成:请核对后重试。");
  }

  $("#box").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") { return; }
    e.preventDefault(); scanned = []; rejected = []; showCounts();
    $("#receipt").className = "message"; $("#receipt").textContent = "请逐一扫描箱内试管"; $("#box-tube").focus();
  });
  function showCounts() {
    $("#scanned-count").textContent = scanned.length;
    $("#rejected-list").textContent = rejected.map((x) => x.tube + "(" + $("#reject-reason option[value=" + x.reason + "]").textContent + ")").join("、");
  }
  $("#box-tube").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") { return; }
    e.preventDefault();
    const code = e.target.value.trim(); e.target.value = "";
    if (code && !scanned.includes(code)) { scanned.push(code); }
    showCounts();
  });
  $("#reject-tube").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") { return; }
    e.preventDefault();
    const code = e.target.value.trim(); e.target.value = "";
    if (code && !rejected.some((x) => x.tube === code)) { rejected.push({ tube: code, reason: $("#reject-reason").value }); }
    showCounts();
  });
  $("#receive").addEventListener("click", async () => {
    const box = $("#box").value.trim();
    const out = $("#receipt");
    if (!box) { out.className = "message bad"; out.textContent = "请先扫描转运箱条码"; return; }
    const body = scanned.length ? { tubes_scanned: scanned } : {};
    if (rejected.length) { body.rejected = rejected; }
    let r;
    try {
      r = await api("/boxes/" + encodeURIComponent(box) + "/receive", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
    } catch (e) { out.className = "message bad"; out.textContent = "网络中断:请检查网络后再点一次确认收样。"; return; }
    if (!r.ok) { out.className = "message bad"; out.textContent = "收样未完成:" + await problem(r); return; }
    const b = await r.json();
    out.className = "message " + (b.missing.length || b.unexpected.length || b.rejected.length ? "bad" : "ok");
    out.textContent = "应到 " + b.expected + ",实收 " + b.received +
      (b.missing.length ? ";缺少 " + b.missing.join(", ") + "(到达后请再扫描该箱并扫入这些试管)" : "") +
      (b.unexpected.length ? ";多出 " + b.unexpected.join(", ") : "") +
      (b.taken_in.length ? "(其中 " + b.taken_in.join(", ") + " 来自其他转运箱,已接收)" : "") +
      (b.rejected.length ? ";拒收 " + b.rejected.map((x) => x.tube + " 共 " + x.members.length + " 人需重新采样").join(", ") : "") +
      (b.results_applied ? ";已计入先前上传的结果 " + b.results_applied + " 管" : "");
    $("#box").value = ""; scanned = []; rejected = []; showCounts(); $("#box").focus();
    listReruns();
  });

  function outcome(name, r, body) {
    const card = el("div", undefined, "panel outcome");
    card.dataset.file = name;
    card.appendChild(el("h3", name));
    if (!r.ok) { card.appendChild(el("p", "未接收:" + body, "message bad")); return card; }
    const s = body;
    card.dataset.format = s.format;
    if (s.already_uploaded) {
      card.appendChild(el("p", "此文件已上传过(首次上传于 " + localTime(s.received_at) + (s.uploaded_by ? ",上传人 " + s.uploaded_by : "") + "),本次未做任何改动。", "message ok"));
    }
    card.appendChild(el("p", "格式 " + s.format + " · " + s.rows + " 行 · 接受 " + s.accepted +
      " · 重复 " + s.duplicate + " · 拒绝 " + s.rejected_total + (s.held ? " · 暂存 " + s.held : "")));
    if (s.held) { card.appendChild(el("p", s.held + " 行的试管本实验室尚未收样:结果已暂存,收样后自动计入。", "message")); }
    card.appendChild(el("p", "阴性 " + s.tubes.negative + " · 阳性 " + s.tubes.positive +
      " · 可疑 " + s.tubes.suspicious + " · 无效 " + s.tubes.invalid + (s.tubes.rerun ? " · 待复测 " + s.tubes.rerun : "")));
    const plates = el("table", undefined, "list");
    plates.appendChild(el("tr")).append(el("th", "板 Plate"), el("th", "质控 Controls"), el("th", "孔 Wells"),
      el("th", "阴/阳/疑/无效"));
    for (const p of s.plates) {
      const tr = el("tr"); tr.dataset.plate = p.plate;
      const c = p.calls || {};
      tr.append(el("td", p.plate), el("td", p.controls === "ok" ? "合格" : "失控:请重做此板后以同一板号上传", p.controls === "ok" ? "" : "bad"),
        el("td", p.wells), el("td", [c.negative, c.positive, c.suspicious, c.invalid].map((v) => v || 0).join(" / ")));
      plates.appendChild(tr);
    }
    card.appendChild(plates);
    if (s.rejected.length) {
      const rej = el("table", undefined, "list rejected");
      rej.appendChild(el("tr")).append(el("th", "行 Line"), el("th", "原因与处理"));
      for (const x of s.rejected.slice(0, 200)) {
        const tr = el("tr"); tr.dataset.type = x.type;
        tr.append(el("td", x.line), el("td", ROW_PROBLEMS[x.type] || "此行无法使用:请核对后重新导出")); rej.appendChild(tr);
      }
      card.appendChild(rej);
      if (s.rejected_total > 200) { card.appendChild(el("p", "另有 " + (s.rejected_total - 200) + " 行被拒绝")); }
    }
    return card;
  }

  async function upload(files) {
    const plate = $("#plate").value.trim();
    for (const file of files) {
      const form = new FormData(); form.append("file", file, file.name);
      if (plate) { form.append("plate", plate); }
      let r, body;
      try {
        r = await api("/labs/" + lab + "/results", { method: "POST", body: form });
        body = r.ok ? await r.json() : await problem(r);
      } catch (e) { r = { ok: false }; body = "网络中断:请检查网络后重新上传此文件。"; }
      $("#outcomes").prepend(outcome(file.name, r, body));
    }
    listUploads(); listReruns();
  }
  $("#files").addEventListener("change", (e) => { upload([...e.target.files]); e.target.value = ""; });
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => { e.preventDefault(); if (lab) { upload([...e.dataTransfer.files]); } });

  async function listUploads() {
    const r = await api("/labs/" + lab + "/uploads?hours=24");
    if (!r.ok) { return; }
    const body = $("#uploads tbody"); body.replaceChildren();
    for (const u of (await r.json()).items) {
      const tr = el("tr"); tr.dataset.upload = u.upload_id;
      const failed = u.plates.filter((p) => p.controls !== "ok").length;
      tr.append(el("td", localTime(u.received_at)), el("td", u.uploaded_by || "-"), el("td", u.filename || "-"), el("td", u.format),
        el("td", u.accepted + " / " + u.rejected_total), el("td", u.plates.length + (failed ? "(失控 " + failed + ")" : "")));
      body.appendChild(tr);
    }
  }

  async function listReruns() {
    const r = await api("/labs/" + lab + "/reruns");
    if (!r.ok) { return; }
    const items = (await r.json()).items;
    const body = $("#reruns tbody"); body.replaceChildren();
    $("#reruns-empty").hidden = items.length > 0;
    for (const p of items) {
      const tr = el("tr"); tr.dataset.plate = p.plate;
      const give = el("button", "放弃此板");
      give.type = "button";
      give.addEventListener("click", async () => {
        if (!window.confirm("放弃板 " + p.plate + " 后,板上 " + p.tubes + " 管的人员都需重新采样。确定吗?")) { return; }
        const a = await api("/labs/" + lab + "/reruns/" + encodeURIComponent(p.plate) + "/abandon", { method: "POST" });
        $("#rerun-message").className = "message " + (a.ok ? "ok" : "bad");
        $("#rerun-message").textContent = a.ok ? "已放弃板 " + p.plate + ":" + (await a.json()).invalid + " 管判为无效,指挥部将安排重新采样。" : "未能放弃:" + await problem(a);
        listReruns();
      });
      const action = el("td"); action.appendChild(give);
      tr.append(el("td", p.plate), el("td", localTime(p.failed_at)), el("td", p.tubes), el("td", p.filename || "-"), action);
      body.appendChild(tr);
    }
  }

  async function start() {
    const r = await api("/tokens/me").catch(() => null);
    if (!r || !r.ok) { logout(r ? "令牌无效:请向指挥部索取实验室令牌后重新登录。" : "服务暂时不可用:请稍后重试。"); return; }
    const me = await r.json();
    if (me.role !== "lab") { logout("这不是实验室令牌:请使用本实验室的令牌登录。"); return; }
    lab = me.lab; $("#lab-code").textContent = lab;
    $("#time-label").textContent = "时间(" + (TZ === "Asia/Shanghai" ? "北京时间" : TZ) + ")";
    $("#login").hidden = true; $("#desk").hidden = false;
    listUploads(); listReruns(); $("#box").focus();
  }
  function logout(message) {
    sessionStorage.removeItem("lab.token"); token = "";
    $("#desk").hidden = true; $("#login").hidden = false; $("#login-error").textContent = message || "";
  }
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault(); token = $("#token").value.trim(); sessionStorage.setItem("lab.token", token); start();
  });
  if (token) { start(); } else { logout(""); }
})();
