// Dark or light as this browser last chose with the header's Dark mode button (localStorage),
// put in place as early as the page allows. Gradio sets the body's "dark" class from the
// system's preference when it starts; a choice made here wins over it. No choice yet: Gradio
// follows the system as usual.
(() => {
  const KEY = "llm-workbench-theme";
  const chosen = () => { try { return localStorage.getItem(KEY); } catch (e) { return null; } };
  const apply = () => {
    const mode = chosen();
    if (mode !== "dark" && mode !== "light") return;
    const dark = mode === "dark";
    for (const element of [document.documentElement, document.body]) {
      if (element && element.classList.contains("dark") !== dark) element.classList.toggle("dark", dark);
    }
  };
  window.workbenchToggleTheme = () => {
    const dark = !document.body.classList.contains("dark");
    try { localStorage.setItem(KEY, dark ? "dark" : "light"); } catch (e) { /* private mode: this page only */ }
    for (const element of [document.documentElement, document.body]) element.classList.toggle("dark", dark);
  };
  // Phones: the header's Chats button opens the chat list (on the Chat tab); choosing a chat
  // or starting a new one folds it away again, so the chat shows.
  window.workbenchToggleChats = () => {
    const chatTab = document.querySelector('[role="tab"]');     // the first tab of the page: Chat
    if (chatTab && chatTab.getAttribute("aria-selected") !== "true") {
      chatTab.click();
      document.body.classList.add("chats-open");
      return;
    }
    document.body.classList.toggle("chats-open");
  };
  document.addEventListener("click", (event) => {
    if (event.target.closest && event.target.closest("#chat-list label, #chat-new")) {
      document.body.classList.remove("chats-open");
    }
  }, true);
  apply();
  const watchBody = () => new MutationObserver(apply).observe(document.body, {attributes: true, attributeFilter: ["class"]});
  if (document.body) {
    watchBody();
  } else {
    document.addEventListener("DOMContentLoaded", () => { apply(); watchBody(); });
  }
})();
