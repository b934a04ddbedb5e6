// The benchmarks page: follow the open requests' progress (every 3 s) until they end.
"use strict";
(function () {
  async function follow() {
    const open = [...document.querySelectorAll("tr[data-open]")];
    if (!open.length) return;
    let ended = false;
    await Promise.all(open.map(async row => {
      const answer = await fetch("/api/v1/bench/requests/" + encodeURIComponent(row.dataset.request),
                                 { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!answer.ok) return;
      const body = await answer.json();
      const request = body.request || body;
      row.querySelector(".state").textContent = request.state;
      const p = request.progress;
      if (p) row.querySelector(".progress").textContent = `${p.done ?? ""}/${p.total ?? ""} ${p.test ?? ""}`;
      if (!["pending", "waiting", "running"].includes(request.state)) {
        delete row.dataset.open;
        ended = true;
      }
    }));
    if (ended) setTimeout(() => location.reload(), 1000);
    else setTimeout(follow, 3000);
  }
  document.addEventListener("DOMContentLoaded", () => setTimeout(follow, 3000));
})();
