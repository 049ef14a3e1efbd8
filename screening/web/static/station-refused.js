// The refused list: events the service refused, kept on the device (IndexedDB) until
// the clerk marks them handled, each with a plain Chinese sentence and what to do next.
// It keeps whom an event concerns only masked: a walk-in's full ID number and name
// leave the device with the queued event once the service has answered for it.
"use strict";
(function (root) {
  const R = root.StationRules, S = root.StationStore;
  const TZ = document.documentElement.dataset.timezone || "Asia/Shanghai";
  const when = new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });

  // already-sampled: where and when, from the ``earlier`` both the /samples problem
  // and the /sync rejection carry
  function whereWhen(problem) {
    const e = problem.earlier || {};
    const at = e.sampled_at ? when.format(new Date(e.sampled_at)) : "";
    const parts = [e.sampling_point && "采样点 " + e.sampling_point, e.tube && "试管 " + e.tube, at && "时间 " + at].filter(Boolean);
    return parts.length ? "(已于" + parts.join(",") + "采样)" : "";
  }

  function item(e, no) {
    const p = R.problemText(no.type);
    const who = e.resident ? R.maskName(e.resident.name) + " " + R.maskId(e.resident.id_number) : e.resident_code || "";
    return {
      event_id: e.event_id, type: no.type, at: e.at, refused_at: new Date().toISOString(), tube: e.tube,
      event: e.type, who, what: p.what, next: p.next, extra: no.type === "already-sampled" ? whereWhen(no) : "",
    };
  }

  async function show() {
    const list = document.querySelector("#refused"); list.replaceChildren();
    const items = await S.refused();
    document.querySelector("#refused-panel").hidden = items.length === 0;
    for (const it of items) {
      const li = document.createElement("li"); li.dataset.type = it.type;
      const head = document.createElement("div"); head.className = "when";
      head.textContent = when.format(new Date(it.at)) + " 试管 " + it.tube + (it.event === "seal" ? "(封管)" : "") + (it.who ? " · " + it.who : "");
      const what = document.createElement("div"); what.className = "what"; what.textContent = it.what + it.extra;
      const next = document.createElement("div"); next.className = "next"; next.textContent = "怎么办:" + it.next;
      const done = document.createElement("button"); done.type = "button"; done.className = "secondary"; done.textContent = "已处理";
      done.onclick = async () => { await S.clearRefused(it.event_id); await show(); };
      li.append(head, what, next, done); list.appendChild(li);
    }
  }

  root.StationRefused = { item, show, whereWhen };
})(window);
