// Served by modules/login_messages.py to Gradio's log-in page only. That page says "Incorrect
// Credentials" for a 400 from POST login and nothing for other answers; when the server answers
// 429 (the log-in throttle), this shows the server's reason in that line's place instead.
(() => {
  "use strict";
  const NOTICE_ID = "login-throttle-notice";
  const realFetch = window.fetch.bind(window);

  function isLogin(resource, init) {
    const method = (init && init.method) || (resource instanceof Request ? resource.method : "GET");
    const url = new URL(resource instanceof Request ? resource.url : String(resource), location.href);
    return method.toUpperCase() === "POST" && /\/login\/?$/.test(url.pathname);
  }

  function gradioLines() {
    return document.querySelectorAll("p.creds");      // Gradio's "Incorrect Credentials"
  }

  function clearPassword() {
    // Svelte keeps the typed value in its own state: an input event tells it.
    const box = document.querySelector("input[type=password]");
    if (box) {
      box.value = "";
      box.dispatchEvent(new Event("input", { bubbles: true }));
    }
  }

  function show(text) {
    let notice = document.getElementById(NOTICE_ID);
    gradioLines().forEach((line) => { line.hidden = Boolean(text); });
    if (!text) {
      if (notice) notice.remove();
      return;
    }
    if (!notice) {
      const form = document.querySelector("input[type=password]")?.closest(".form");
      if (!form) return;
      notice = document.createElement("p");
      notice.id = NOTICE_ID;
      notice.setAttribute("role", "alert");
      notice.style.cssText = "color: var(--error-text-color, #b91c1c); text-align: center; margin: 0;";
      form.parentNode.insertBefore(notice, form);
    }
    notice.textContent = text;          // text, never HTML
  }

  window.fetch = async (resource, init) => {
    const response = await realFetch(resource, init);
    if (isLogin(resource, init)) {
      let text = "";
      if (response.status === 429) {
        const detail = await response.clone().json().then((body) => body.detail, () => null);
        text = typeof detail === "string" && detail ? detail : "Too many attempts: try again later";
        clearPassword();
      }
      show(text);
    }
    return response;
  };
})();
