// The Streamlit component protocol (normally streamlit-component-lib, which needs a build
// step): a handful of postMessage calls, by hand; and what goes back to Python.

import { dom, state, stats } from "./state.mjs";

function sendToStreamlit(type, data = {}) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
}

let lastHeight = -1;
export function reportHeight() {
  const height = Math.ceil(dom.root.getBoundingClientRect().height) + 4;
  if (height !== lastHeight) {
    lastHeight = height;
    sendToStreamlit("streamlit:setFrameHeight", { height });
  }
}

// z, the last user change (event), a weights request and the version shown; `extra` adds
// {error, signature} when the runtime cannot load a model.
export function sendValue(extra = {}) {
  stats.reports += 1;
  const value = {
    z: Array.from(state.z),
    event: state.event,
    request: state.request ? state.request.id : null,
    version: state.version,
    ...extra,
  };
  sendToStreamlit("streamlit:setComponentValue", { value, dataType: "json" });
}

// Calls onRender(args, theme, disabled) for each render Streamlit sends, then says ready.
export function connect(onRender) {
  window.addEventListener("message", (event) => {
    if (event.data?.type === "streamlit:render") {
      onRender(event.data.args, event.data.theme, event.data.disabled);
    }
  });
  new ResizeObserver(reportHeight).observe(dom.root);
  sendToStreamlit("streamlit:componentReady", { apiVersion: 1 });
}
