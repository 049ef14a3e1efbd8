// Walk-ins, people with no code: the clerk types the ID number and name, or an ID-card
// reader types the 18-character number into the scan field. The person goes to the
// service inside the sample event (``resident: {...}``), registered and sampled in one
// step, also offline; the page keeps the typed data only inside that queued event.
"use strict";
(function (root) {
  const $ = (sel) => document.querySelector(sel);
  const R = root.StationRules;

  function attach({ say, beep, hasTube, take }) {
    const message = (text) => { const m = $("#walkin-message"); m.textContent = text; m.className = "message" + (text ? " bad" : ""); };
    function start(idNumber, idType) {
      $("#walkin-panel").open = true;
      $("#id-type").value = idType; $("#id-number").value = idNumber; $("#nationality-label").hidden = true;
      const problem = R.idNumberProblem(idType, idNumber);
      if (problem) { say(problem, "bad", "请重新读卡,或手工核对号码"); $("#id-number").focus(); return; }
      say("已读到身份证号 " + R.maskId(idNumber), "", "请填写姓名,然后点“登记并采入当前试管”");
      $("#name").focus();
    }
    async function submit() {
      const idType = $("#id-type").value, idNumber = $("#id-number").value.trim().toUpperCase();
      const name = $("#name").value.trim(), phone = $("#phone").value.trim(), nationality = $("#nationality").value.trim().toUpperCase();
      const problem = R.idNumberProblem(idType, idNumber, nationality) || (name ? "" : "请填写姓名") ||
        (phone && !/^\+?[0-9 -]{5,20}$/.test(phone) ? "手机号码格式不对" : "") || (hasTube() ? "" : "请先扫描试管条码");
      if (problem) { message(problem); beep(false); return; }
      const person = { id_type: idType, id_number: idNumber, name };
      if (phone) { person.phone = phone; }
      if (idType === "passport") { person.nationality = nationality; }
      message("");
      await take(person);
      for (const f of ["#id-number", "#name", "#phone", "#nationality"]) { $(f).value = ""; }
      $("#walkin-panel").open = false; $("#scan").focus();
    }
    $("#walkin").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
    $("#id-type").addEventListener("change", () => { $("#nationality-label").hidden = $("#id-type").value !== "passport"; });
    return { start };
  }

  root.StationWalkin = { attach };
})(window);
