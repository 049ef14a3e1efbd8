// Lab page: receive a box by scanning it and its tubes, upload instrument files (one or
// many, format detected by the service) and read back each file's summary, and the
// day's uploads. Only the existing API; the lab token stays in this tab.
"use strict";
(function () {
  const API = "/api/v1";
  const $ = (sel) => document.querySelector(sel);
  let token = sessionStorage.getItem("lab.token") || "";
  let lab = null;
  let scanned = [];

  function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) { e.textContent = text; } if (cls) { e.className = cls; } return e; }
  async function api(path, options) {
    return fetch(API + path, { ...(options || {}), headers: { Authorization: "Bearer " + token, ...((options || {}).headers || {}) } });
  }
  async function problem(r) { try { const p = await r.json(); return p.detail || p.title; } catch (e) { return "HTTP " + r.status; } }

  $("#box").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") { return; }
    e.preventDefault(); scanned = []; $("#scanned-count").textContent = "0";
    $("#receipt").textContent = "请扫描箱内试管"; $("#box-tube").focus();
  });
  $("#box-tube").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") { return; }
    e.preventDefault();
    const code = e.target.value.trim(); e.target.value = "";
    if (code && !scanned.includes(code)) { scanned.push(code); }
    $("#scanned-count").textContent = scanned.length;
  });
  $("#receive").addEventListener("click", async () => {
    const box = $("#box").value.trim();
    if (!box) { $("#receipt").textContent = "请先扫描转运箱"; return; }
    const r = await api("/boxes/" + encodeURIComponent(box) + "/receive", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(scanned.length ? { tubes_scanned: scanned } : {}),
    });
    const out = $("#receipt");
    if (!r.ok) { out.className = "message bad"; out.textContent = "收样失败:" + await problem(r); return; }
    const b = await r.json();
    out.className = "message " + (b.missing.length || b.unexpected.length ? "bad" : "ok");
    out.textContent = "应到 " + b.expected + ",实收 " + b.received +
      (b.missing.length ? ";缺少 " + b.missing.join(", ") : "") +
      (b.unexpected.length ? ";多出 " + b.unexpected.join(", ") : "");
    $("#box").value = ""; scanned = []; $("#scanned-count").textContent = "0"; $("#box").focus();
  });

  function outcome(name, r, body) {
    const card = el("div", undefined, "panel outcome");
    card.dataset.file = name;
    card.appendChild(el("h3", name));
    if (!r.ok) { card.appendChild(el("p", "未接收:" + body, "message bad")); return card; }
    const s = body;
    card.dataset.format = s.format;
    card.appendChild(el("p", "格式 " + s.format + " · " + s.rows + " 行 · 接受 " + s.accepted +
      " · 重复 " + s.duplicate + " · 拒绝 " + s.rejected_total));
    card.appendChild(el("p", "阴性 " + s.tubes.negative + " · 阳性 " + s.tubes.positive +
      " · 可疑 " + s.tubes.suspicious + " · 无效 " + s.tubes.invalid));
    const plates = el("table", undefined, "list");
    plates.appendChild(el("tr")).append(el("th", "板 Plate"), el("th", "质控 Controls"), el("th", "孔 Wells"),
      el("th", "阴/阳/疑/无效"));
    for (const p of s.plates) {
      const tr = el("tr"); tr.dataset.plate = p.plate;
      const c = p.calls || {};
      tr.append(el("td", p.plate), el("td", p.controls === "ok" ? "合格" : "失控(整板无效)", p.controls === "ok" ? "" : "bad"),
        el("td", p.wells), el("td", [c.negative, c.positive, c.suspicious, c.invalid].map((v) => v || 0).join(" / ")));
      plates.appendChild(tr);
    }
    card.appendChild(plates);
    if (s.rejected.length) {
      const rej = el("table", undefined, "list rejected");
      rej.appendChild(el("tr")).append(el("th", "行 Line"), el("th", "原因 Type"), el("th", "说明 Detail"));
      for (const x of s.rejected.slice(0, 200)) {
        const tr = el("tr"); tr.append(el("td", x.line), el("td", x.type), el("td", x.detail)); rej.appendChild(tr);
      }
      card.appendChild(rej);
      if (s.rejected_total > 200) { card.appendChild(el("p", "另有 " + (s.rejected_total - 200) + " 行被拒绝")); }
    }
    return card;
  }

  async function upload(files) {
    for (const file of files) {
      const form = new FormData(); form.append("file", file, file.name);
      let r, body;
      try {
        r = await api("/labs/" + lab + "/results", { method: "POST", body: form });
        body = r.ok ? await r.json() : await problem(r);
      } catch (e) { r = { ok: false }; body = "网络错误,请重试"; }
      $("#outcomes").prepend(outcome(file.name, r, body));
    }
    listUploads();
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
      tr.append(el("td", u.upload_id), el("td", u.filename || "-"), el("td", u.format),
        el("td", u.accepted + " / " + u.rejected_total), el("td", u.plates.length + (failed ? "(失控 " + failed + ")" : "")));
      body.appendChild(tr);
    }
  }

  async function start() {
    const r = await api("/tokens/me").catch(() => null);
    if (!r || !r.ok) { logout(r ? "令牌无效" : "服务不可用"); return; }
    const me = await r.json();
    if (me.role !== "lab") { logout("请使用实验室令牌"); return; }
    lab = me.lab; $("#lab-code").textContent = lab;
    $("#login").hidden = true; $("#desk").hidden = false;
    listUploads(); $("#box").focus();
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
