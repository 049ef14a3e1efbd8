// Resident result query: ID number and name in, rounds and plain-words statuses out.
// Validates a mainland ID's check digit before sending (GB 11643, ISO 7064 MOD 11-2).
// Keeps nothing: no storage, fields cleared when the page is hidden or closed.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  const WORDS = {
    pending: ["待出结果", "样本正在检测,请稍后再查。", "pending"],
    negative: ["阴性", "未检出新冠病毒核酸。", "negative"],
    retest: ["需复核", "您所在的混管需要复核:请原地等待,不要外出,工作人员将为您单独采样复核。", "retest"],
    positive: ["阳性", "请立即居家隔离,不要外出,保持电话畅通,疾控人员将与您联系并安排转运。", "positive"],
    invalid: ["无效", "样本检测无效,请尽快到就近采样点重新采样。", "invalid"],
  };
  const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const CHECK = "10X98765432";
  let countdown = null;

  function say(text, cls) { const m = $("#message"); m.textContent = text; m.className = "message " + (cls || ""); }

  function checkMainlandId(value) {
    if (!/^\d{17}[\dX]$/.test(value)) { return null; }  // not a mainland ID: sent as is
    let sum = 0;
    for (let i = 0; i < 17; i++) { sum += Number(value[i]) * WEIGHTS[i]; }
    return CHECK[sum % 11] === value[17];
  }

  function show(items) {
    const list = $("#items");
    list.replaceChildren();
    if (!items.length) {
      const li = document.createElement("li");
      li.textContent = "暂无采样记录。";
      list.appendChild(li);
    }
    for (const item of items) {
      const [label, advice, cls] = WORDS[item.status] || [item.status, "", ""];
      const li = document.createElement("li");
      li.className = "result " + cls;
      li.dataset.status = item.status;
      const head = document.createElement("div");
      head.className = "result-head";
      const round = document.createElement("span");
      round.textContent = item.round;
      const status = document.createElement("b");
      status.textContent = label;
      head.append(round, status);
      const when = document.createElement("div");
      when.className = "when";
      // times come in the service's zone (SCREENING_TIMEZONE), offset included: shown as written
      const local = (iso) => iso.slice(0, 16).replace("T", " ");
      when.textContent = "采样 " + local(item.sampled_at) +
        (item.reported_at ? " · 报告 " + local(item.reported_at) : "") +
        (item.lab ? " · 检测机构 " + item.lab : "");
      const text = document.createElement("p");
      text.textContent = advice;
      li.append(head, when, text);
      list.appendChild(li);
    }
    $("#query").hidden = true;
    $("#results").hidden = false;
  }

  function clearAll() {
    $("#id-number").value = ""; $("#name").value = "";
    $("#items").replaceChildren();
    $("#results").hidden = true; $("#query").hidden = false;
    say("");
  }

  function wait(seconds) {
    const button = $("button[type=submit]");
    button.disabled = true;
    let left = seconds;
    clearInterval(countdown);
    const tick = () => {
      if (left <= 0) { clearInterval(countdown); button.disabled = false; say(""); return; }
      say("查询次数过多,请 " + left + " 秒后再试。感谢您的耐心。", "wait");
      left -= 1;
    };
    tick();
    countdown = setInterval(tick, 1000);
  }

  $("#query").addEventListener("submit", async (e) => {
    e.preventDefault();
    const idNumber = $("#id-number").value.trim().toUpperCase();
    const name = $("#name").value.trim();
    if (!idNumber || !name) { say("请填写证件号码和姓名。", "bad"); return; }
    if (checkMainlandId(idNumber) === false) { say("身份证号码校验位不正确,请核对后重新输入。", "bad"); return; }
    say("查询中…");
    let r;
    try {
      r = await fetch("/api/v1/results/query", {
        method: "POST", headers: { "Content-Type": "application/json" }, cache: "no-store",
        body: JSON.stringify({ id_number: idNumber, name }),
      });
    } catch (err) { say("网络不可用,请稍后再试。", "bad"); return; }
    if (r.status === 200) { say(""); show((await r.json()).items); return; }
    if (r.status === 429) { wait(Number(r.headers.get("Retry-After")) || 60); return; }
    if (r.status === 404) { say("未查到结果:请核对证件号码和姓名。", "bad"); return; }
    if (r.status === 422) { say("证件号码或姓名格式不正确。", "bad"); return; }
    say("服务暂时不可用,请稍后再试。", "bad");
  });
  $("#clear").addEventListener("click", clearAll);
  window.addEventListener("pagehide", clearAll);
})();
