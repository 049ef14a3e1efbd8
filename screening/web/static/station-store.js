// What the station keeps on the device, in IndexedDB so a reload, a flat battery or a
// dead network loses nothing:
//   queue    events not yet accounted for by the service (the only place a walk-in's
//            ID number and name are kept, and only until the service answers for them)
//   tubes    what the service last said of a tube (count, state, members' codes)
//   refused  events the service refused, with the reason, until the clerk clears them
// A tube's count on screen is the service's count plus its queued sample events.
"use strict";
(function (root) {
  let db = null;

  function request(r) {
    return new Promise((ok, bad) => { r.onsuccess = () => ok(r.result); r.onerror = () => bad(r.error); });
  }
  function done(tx) {
    return new Promise((ok, bad) => { tx.oncomplete = () => ok(); tx.onerror = () => bad(tx.error); tx.onabort = () => bad(tx.error); });
  }
  function open() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open("station", 2);
      req.onupgradeneeded = (e) => {
        const d = req.result;
        const queue = e.oldVersion < 1
          ? d.createObjectStore("queue", { keyPath: "seq", autoIncrement: true })
          : req.transaction.objectStore("queue");
        queue.createIndex("tube", "tube");
        if (e.oldVersion >= 1) { d.deleteObjectStore("tubes"); }  // v1 counted sent scans twice
        d.createObjectStore("tubes", { keyPath: "barcode" });
        d.createObjectStore("refused", { keyPath: "event_id" });
      };
      req.onsuccess = () => { db = req.result; resolve(db); };
      req.onerror = () => reject(req.error);
    });
  }
  function store(name, mode) { return db.transaction(name, mode).objectStore(name); }

  async function enqueue(event) {
    const tx = db.transaction("queue", "readwrite");
    tx.objectStore("queue").add(event);
    await done(tx);
  }
  function queued(limit) { return request(store("queue", "readonly").getAll(null, limit)); }
  function queueSize() { return request(store("queue", "readonly").count()); }
  function queuedFor(tube) { return request(store("queue", "readonly").index("tube").getAll(tube)); }

  function tube(barcode) { return request(store("tubes", "readonly").get(barcode)); }
  async function putTube(t) { await request(store("tubes", "readwrite").put(t)); }

  // One transaction: the accounted events leave the queue, the refused ones enter the
  // refused list, the tubes take the applied ones. A crash half-way leaves all queued.
  async function settle(accounted, refusedItems, tubes) {
    const tx = db.transaction(["queue", "refused", "tubes"], "readwrite");
    for (const e of accounted) { tx.objectStore("queue").delete(e.seq); }
    for (const item of refusedItems) { tx.objectStore("refused").put(item); }
    for (const t of tubes) { tx.objectStore("tubes").put(t); }
    await done(tx);
  }
  async function addRefused(item) { await request(store("refused", "readwrite").put(item)); }
  async function refused() {
    const items = await request(store("refused", "readonly").getAll());
    return items.sort((a, b) => (a.refused_at < b.refused_at ? 1 : -1));
  }
  async function clearRefused(eventId) { await request(store("refused", "readwrite").delete(eventId)); }

  root.StationStore = {
    open, enqueue, queued, queueSize, queuedFor, tube, putTube, settle, addRefused, refused, clearRefused,
  };
})(window);
