// Live figures without third-party code: each element with data-poll is replaced by a fresh
// rendering of that URL every data-every seconds (same origin, cookie sent, CSP 'self').
document.addEventListener("DOMContentLoaded", () => {
  for (const element of document.querySelectorAll("[data-poll]")) {
    const every = Math.max(1, Number(element.dataset.every || 2)) * 1000;
    const refresh = async () => {
      try {
        const response = await fetch(element.dataset.poll, {
          headers: { "HX-Request": "true" }, credentials: "same-origin",
        });
        if (response.status === 401) { window.location.assign("/admin/login"); return; }
        if (response.ok) { element.innerHTML = await response.text(); }
      } catch (error) {
        // The next round tries again; a store that is down shows on reload.
      }
      setTimeout(refresh, every);
    };
    setTimeout(refresh, every);
  }
});
