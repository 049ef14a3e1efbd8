// Packing a transport box at the station and dispatching it. Online only: the service
// checks that every tube is sealed and in no other box, so the scan queue is sent first.
"use strict";
(function (root) {
  const $ = (sel) => document.querySelector(sel);

  function attach({ api, flush, pendingCount, beep }) {
    let boxed = [];
    function boxSay(text, kind) { const m = $("#box-message"); m.textContent = text; m.className = "message " + (kind || ""); }
    async function refusal(r, what) {
      let type = "";
      try { type = (await r.json()).type; } catch (e) { /* not a problem document */ }
      const p = root.StationRules.problemText(type);
      boxSay(what + ":" + p.what + "。" + p.next, "bad"); beep(false);
    }
    $("#box").addEventListener("keydown", (e) => {
      if (e.key !== "Enter") { return; }
      e.preventDefault(); boxed = []; $("#boxed").textContent = "0"; $("#box-tube").focus();
      boxSay("请逐一扫描装箱试管");
    });
    $("#box-tube").addEventListener("keydown", (e) => {
      if (e.key !== "Enter") { return; }
      e.preventDefault();
      const code = e.target.value.trim(); e.target.value = "";
      if (!root.StationRules.barcodeOk(code)) { boxSay("试管条码校验错误:" + code, "bad"); beep(false); return; }
      if (!boxed.includes(code)) { boxed.push(code); beep(true); }
      $("#boxed").textContent = boxed.length;
    });
    $("#dispatch").addEventListener("click", async () => {
      const box = $("#box").value.trim();
      if (!box || !boxed.length) { boxSay("请先扫描转运箱和试管", "bad"); return; }
      await flush();
      if ((await pendingCount()) > 0) { boxSay("还有未上传的扫码,联网后再装箱", "bad"); return; }
      try {
        let r = await api("/boxes", { method: "POST", body: JSON.stringify({ barcode: box, lab: $("#lab").value, tubes: boxed }) });
        if (!r.ok) { await refusal(r, "装箱失败"); return; }
        r = await api("/boxes/" + encodeURIComponent(box) + "/dispatch", { method: "POST", body: "{}" });
        if (!r.ok) { await refusal(r, "发运失败"); return; }
        boxSay("已发运 " + box + "(" + boxed.length + " 管)", "ok"); beep(true);
        boxed = []; $("#boxed").textContent = "0"; $("#box").value = "";
      } catch (e) { boxSay("需要网络才能装箱发运", "bad"); beep(false); }
    });
  }

  root.StationBox = { attach };
})(window);
