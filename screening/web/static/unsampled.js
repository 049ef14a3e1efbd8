// Dashboard panel: per district of the chosen round, residents not yet swabbed, each
// with a link that downloads the list (CSV with full names and phones, audited by the
// service) for the community workers. Kept apart from dashboard.js on purpose: it only
// reads the round picker and the token that page keeps.
"use strict";
(function () {
  const API = "/api/v1";
  const KEY = "screening.admin-token";
  const $ = (sel) => document.querySelector(sel);
  const fmt = new Intl.NumberFormat("zh-CN");

  function headers() { return { Authorization: "Bearer " + (sessionStorage.getItem(KEY) || "") }; }
  function round() { const s = $("#round"); return s && s.value ? s.value : null; }

  async function download(roundId, district, link) {
    link.textContent = "下载中…";
    try {
      const r = await fetch(API + "/rounds/" + roundId + "/unsampled.csv?district=" + encodeURIComponent(district),
        { headers: headers(), cache: "no-store" });
      if (!r.ok) { throw new Error(String(r.status)); }
      const url = URL.createObjectURL(await r.blob());
      const a = document.createElement("a");
      a.href = url; a.download = "未采样名单-" + district + ".csv";
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      link.textContent = "名单";
    } catch (e) { link.textContent = "下载失败,重试"; }
  }

  async function refresh() {
    const roundId = round();
    const body = $("#unsampled tbody");
    if (!roundId || !body || !sessionStorage.getItem(KEY)) { return; }
    let rows;
    try {
      const r = await fetch(API + "/rounds/" + roundId + "/unsampled/districts", { headers: headers(), cache: "no-store" });
      if (!r.ok) { return; }
      rows = await r.json();
    } catch (e) { return; }
    body.replaceChildren();
    for (const d of rows) {
      const tr = document.createElement("tr");
      tr.dataset.district = d.district;
      const name = document.createElement("td"); name.textContent = d.district + " " + d.name;
      const count = document.createElement("td"); count.textContent = fmt.format(d.unsampled) + " / " + fmt.format(d.registered);
      const list = document.createElement("td");
      const link = document.createElement("a");
      link.href = "#"; link.textContent = "名单"; link.dataset.testid = "unsampled-list";
      link.addEventListener("click", (e) => { e.preventDefault(); download(roundId, d.district, link); });
      list.appendChild(link);
      tr.append(name, count, list);
      body.appendChild(tr);
    }
  }

  document.addEventListener("change", (e) => { if (e.target && e.target.id === "round") { refresh(); } });
  setInterval(refresh, 60000);
  const wait = setInterval(() => { if (round()) { clearInterval(wait); refresh(); } }, 500);
})();
