// foliosim serve: charts from the page's JSON, the step button, and the token.
"use strict";

const TOKEN_KEY = "foliosim-token";

// A token given as http://host/#token=... is kept for this tab and dropped from the address.
function takeTokenFromAddress() {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
}

function chartData() {
  const node = document.getElementById("chart-data");
  return node ? JSON.parse(node.textContent) : {};
}

const LAYOUT = {
  margin: { l: 70, r: 20, t: 10, b: 40 },
  legend: { orientation: "h", y: 1.08 },
  hovermode: "x unified",
  font: { family: "system-ui, sans-serif", size: 12 },
};

function drawEquity(node, data) {
  const line = (name, y, color, dash) => ({
    x: data.weeks, y: y, name: name, type: "scatter", mode: "lines",
    line: { color: color, width: 2, dash: dash || "solid" },
    hovertemplate: "%{y:,.0f}",
  });
  const traces = [
    line("account", data.account, "#1f5fbf"),
    line("1/N", data.equal_weight, "#2e8b57", "dash"),
    line("index (" + data.benchmark_name + ")", data.benchmark, "#8a8f98", "dot"),
  ];
  Plotly.newPlot(node, traces, { ...LAYOUT, yaxis: { tickformat: ",.0f" } },
                 { responsive: true, displaylogo: false });
}

function drawWeights(node, data) {
  const colors = data.weights.map((w) => (w < 0 ? "#b3261e" : "#1f5fbf"));
  const trace = { x: data.tickers, y: data.weights, type: "bar", marker: { color: colors },
                  hovertemplate: "%{x}: %{y:.2%}<extra></extra>" };
  Plotly.newPlot(node, [trace], { ...LAYOUT, yaxis: { tickformat: ".0%" } },
                 { responsive: true, displaylogo: false });
}

function drawCharts() {
  const data = chartData();
  document.querySelectorAll("[data-chart]").forEach((node) => {
    const kind = node.dataset.chart;
    if (!data[kind] || typeof Plotly === "undefined") return;
    if (kind === "equity") drawEquity(node, data.equity);
    if (kind === "weights") drawWeights(node, data.weights);
  });
}

async function step(form) {
  const result = document.getElementById("step-result");
  const button = form.querySelector("button");
  const typed = form.elements.token.value.trim();
  if (typed) sessionStorage.setItem(TOKEN_KEY, typed);
  const token = typed || sessionStorage.getItem(TOKEN_KEY) || "";
  const weeks = parseInt(form.elements.weeks.value, 10) || 1;
  button.disabled = true;
  result.textContent = "stepping…";
  try {
    const response = await fetch(
      "/api/accounts/" + encodeURIComponent(form.dataset.account) + "/step",
      {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
        body: JSON.stringify({ weeks: weeks }),
      });
    const doc = await response.json();
    if (!response.ok) {
      result.textContent = "error " + response.status + ": " + doc.error.message;
      return;
    }
    result.textContent = doc.recorded.length
      ? "recorded " + doc.recorded.join(", ")
      : "nothing to do: no later complete week in the data";
    if (doc.recorded.length) window.location.reload();
  } catch (err) {
    result.textContent = "error: " + err;
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromAddress();
  drawCharts();
  const form = document.getElementById("step-form");
  if (form) {
    if (sessionStorage.getItem(TOKEN_KEY)) form.elements.token.placeholder = "(kept for this tab)";
    form.addEventListener("submit", (event) => { event.preventDefault(); step(form); });
  }
});
