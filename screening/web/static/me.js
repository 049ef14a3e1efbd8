// /me: a resident registers themselves and their family on one phone and shows each
// person's code as a large QR, also offline (me-sw.js keeps the page; the codes and
// their QR pictures are kept in localStorage). Nothing personal is kept: only each
// code, its QR (which holds nothing but the code) and the masked name the service
// answered. The form is cleared after each registration.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  const KEY = "me.people.v1";
  const FIELDS_ZH = {
    id_type: "证件类型", id_number: "证件号码", nationality: "国籍", name: "姓名",
    phone: "手机号码", district: "所在区", community: "社区", address: "住址",
  };
  const WORDS = {
    pending: ["待出结果", "样本正在检测,请稍后再查。"],
    negative: ["阴性", "未检出新冠病毒核酸。"],
    retest: ["需复核", "您所在的混管需要复核:请原地等待,不要外出,工作人员将为您单独采样复核。"],
    positive: ["阳性", "请立即居家隔离,不要外出,保持电话畅通,疾控人员将与您联系。"],
    invalid: ["无效", "样本检测无效,请尽快到就近采样点重新采样。"],
  };
  let shown = null;
  let countdown = null;

  function load() {
    try { return JSON.parse(localStorage.getItem(KEY) || "[]"); } catch (e) { return []; }
  }
  function save(people) { localStorage.setItem(KEY, JSON.stringify(people)); }
  function say(el, text, cls) { el.textContent = text; el.className = "message " + (cls || ""); }

  function render() {
    const people = load();
    const nav = $("#people");
    nav.replaceChildren();
    if (!people.length) { $("#card").hidden = true; $("#empty").hidden = false; return; }
    $("#empty").hidden = true;
    if (!people.some((p) => p.code === shown)) { shown = people[0].code; }
    for (const p of people) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = p.name_masked;
      b.dataset.code = p.code;
      b.className = p.code === shown ? "on" : "";
      b.addEventListener("click", () => { shown = p.code; render(); });
      nav.appendChild(b);
    }
    const person = people.find((p) => p.code === shown);
    const holder = $("#qr");
    holder.replaceChildren();
    const svg = new DOMParser().parseFromString(person.svg, "image/svg+xml").documentElement;
    if (svg && svg.nodeName.toLowerCase() === "svg") {
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", "核酸码 " + person.code);
      holder.appendChild(document.importNode(svg, true));
    }
    $("#card-name").textContent = person.name_masked;
    $("#card-code").textContent = person.code.replace(/(.{4})(?=.)/g, "$1 ");
    holder.dataset.code = person.code;
    $("#card").hidden = false;
  }

  function showForm(open) {
    $("#register").hidden = !open;
    $("#add").hidden = open;
    if (open) { $("#id-number").focus(); }
  }

  function clearForm() {
    for (const id of ["id-number", "nationality", "name", "community", "address"]) { $("#" + id).value = ""; }
    say($("#message"), "");
  }

  function wait(el, seconds, button) {
    let left = seconds;
    button.disabled = true;
    clearInterval(countdown);
    const tick = () => {
      if (left <= 0) { clearInterval(countdown); button.disabled = false; say(el, ""); return; }
      say(el, "尝试次数过多,请 " + left + " 秒后再试。", "wait");
      left -= 1;
    };
    tick();
    countdown = setInterval(tick, 1000);
  }

  async function problem(r) {
    let body = {};
    try { body = await r.json(); } catch (e) { /* not JSON: a proxy's page */ }
    if (body.type === "invalid-request" && Array.isArray(body.errors)) {
      const names = body.errors.map((e) => FIELDS_ZH[(e.loc || []).slice(-1)[0]]).filter(Boolean);
      if (names.length) { return "请检查:" + Array.from(new Set(names)).join("、") + "。"; }
    }
    if (/[\u4e00-\u9fff]/.test(body.detail || "")) { return body.detail; }
    return "登记未成功,请检查填写的内容后再试。";
  }

  async function loadDistricts() {
    const select = $("#district");
    try {
      const r = await fetch("/api/v1/residents/self/districts", { cache: "no-store" });
      if (!r.ok) { throw new Error(String(r.status)); }
      select.replaceChildren();
      for (const d of await r.json()) {
        const o = document.createElement("option");
        o.value = d.code; o.textContent = d.name;
        select.appendChild(o);
      }
    } catch (e) { say($("#net"), "当前无网络:已登记的核酸码照常显示,登记新成员需联网。", "wait"); }
  }

  $("#register").addEventListener("submit", async (e) => {
    e.preventDefault();
    const msg = $("#message");
    const body = {
      id_type: $("#id-type").value,
      id_number: $("#id-number").value.trim(),
      name: $("#name").value.trim(),
      phone: $("#phone").value.trim(),
      district: $("#district").value,
    };
    if ($("#id-type").value === "passport") { body.nationality = $("#nationality").value.trim().toUpperCase(); }
    for (const [field, id] of [["community", "community"], ["address", "address"]]) {
      const v = $("#" + id).value.trim();
      if (v) { body[field] = v; }
    }
    if (!body.id_number || !body.name || !body.phone || !body.district) {
      say(msg, "请填写证件号码、姓名、手机号码,并选择所在区。", "bad"); return;
    }
    say(msg, "登记中…");
    let r;
    try {
      r = await fetch("/api/v1/residents/self", {
        method: "POST", headers: { "Content-Type": "application/json" }, cache: "no-store",
        body: JSON.stringify(body),
      });
    } catch (err) { say(msg, "网络不可用,请联网后再登记。", "bad"); return; }
    if (r.status === 429) { wait(msg, Number(r.headers.get("Retry-After")) || 60, $("#register button[type=submit]")); return; }
    if (r.status !== 200 && r.status !== 201) { say(msg, await problem(r), "bad"); return; }
    const answer = await r.json();
    let svg;
    try {
      const q = await fetch("/api/v1/residents/" + encodeURIComponent(answer.resident_code) + "/qr.svg");
      if (!q.ok) { throw new Error(String(q.status)); }
      svg = await q.text();
    } catch (err) { say(msg, "已登记,但二维码未能下载,请联网后重试。", "bad"); return; }
    const people = load().filter((p) => p.code !== answer.resident_code);
    people.push({ code: answer.resident_code, name_masked: answer.name_masked, svg });
    save(people);
    shown = answer.resident_code;
    clearForm();
    showForm(false);
    render();
    say($("#net"), r.status === 201 ? "登记成功。" : "此人已登记过,已显示其核酸码。", "ok");
  });

  $("#query").addEventListener("submit", async (e) => {
    e.preventDefault();
    const msg = $("#q-message");
    const idNumber = $("#q-id").value.trim().toUpperCase();
    const name = $("#q-name").value.trim();
    if (!idNumber || !name) { say(msg, "请填写证件号码和姓名。", "bad"); return; }
    say(msg, "查询中…");
    let r;
    try {
      r = await fetch("/api/v1/results/query", {
        method: "POST", headers: { "Content-Type": "application/json" }, cache: "no-store",
        body: JSON.stringify({ id_number: idNumber, name }),
      });
    } catch (err) { say(msg, "网络不可用,请联网后查询。", "bad"); return; }
    if (r.status === 429) { wait(msg, Number(r.headers.get("Retry-After")) || 60, $("#query button")); return; }
    if (r.status === 404) { say(msg, "未查到结果:请核对证件号码和姓名。", "bad"); return; }
    if (r.status !== 200) { say(msg, "证件号码或姓名格式不正确。", "bad"); return; }
    $("#q-id").value = ""; $("#q-name").value = "";
    say(msg, "");
    showResults((await r.json()).items);
  });

  // Times come in the service's zone (SCREENING_TIMEZONE, with its offset): shown as written.
  function local(iso) { return iso ? iso.slice(0, 16).replace("T", " ") : ""; }

  function showResults(items) {
    const list = $("#items");
    list.replaceChildren();
    if (!items.length) { const li = document.createElement("li"); li.textContent = "暂无采样记录。"; list.appendChild(li); }
    for (const item of items) {
      const [label, advice] = WORDS[item.status] || [item.status, ""];
      const li = document.createElement("li");
      li.className = "result " + item.status;
      li.dataset.status = item.status;
      const head = document.createElement("div");
      head.className = "result-head";
      const round = document.createElement("span"); round.textContent = item.round;
      const status = document.createElement("b"); status.textContent = label;
      head.append(round, status);
      const when = document.createElement("div");
      when.className = "when";
      when.textContent = "采样 " + local(item.sampled_at) +
        (item.reported_at ? " · 报告 " + local(item.reported_at) : "") +
        (item.lab ? " · 检测机构 " + item.lab : "");
      const text = document.createElement("p"); text.textContent = advice;
      li.append(head, when, text);
      list.appendChild(li);
    }
  }

  $("#id-type").addEventListener("change", () => { $("#nationality-row").hidden = $("#id-type").value !== "passport"; });
  $("#add").addEventListener("click", () => showForm(true));
  $("#cancel").addEventListener("click", () => { clearForm(); showForm(false); });
  $("#remove").addEventListener("click", () => {
    if (!shown || !window.confirm("从本机移除 " + $("#card-name").textContent + " 的核酸码?(登记不受影响)")) { return; }
    save(load().filter((p) => p.code !== shown));
    shown = null;
    render();
  });
  window.addEventListener("pagehide", () => {
    for (const id of ["q-id", "q-name"]) { $("#" + id).value = ""; }
    clearForm();
  });
  if ("serviceWorker" in navigator) { navigator.serviceWorker.register("/me-sw.js", { scope: "/me" }); }
  render();
  if (!load().length) { showForm(true); }
  loadDistricts();
})();
