// The dashboard's charts, drawn with plotly.js (served from the installed plotly package).
// Days are categories ("2026-12-02"), not times: a date axis over one day would label the hours of it.
(function () {
  const data = JSON.parse(document.getElementById("dash-data").textContent);
  if (typeof Plotly === "undefined" || !document.getElementById("chart-funnel")) return;
  const layout = (title, extra) => Object.assign(
    {title: {text: title, font: {size: 14}}, margin: {l: 60, r: 10, t: 40, b: 70}, legend: {orientation: "h", y: -0.25}},
    extra || {});
  const config = {displaylogo: false, responsive: true};
  const days = data.daily.day || [];
  const dayAxis = {type: "category", title: {text: "day (UTC)"}, automargin: true};
  const line = (key, name) => ({x: days, y: data.daily[key] || [], name: name, type: "scatter", mode: "lines+markers"});

  Plotly.newPlot("chart-funnel", [
    line("sent", "sent"), line("delivered", "delivered"), line("opened", "opened"),
    line("clicked", "clicked"), line("converted", "converted"),
  ], layout("Funnel per day (first event of each recipient)",
            {xaxis: dayAxis, yaxis: {rangemode: "tozero", title: {text: "recipients"}}}), config);

  Plotly.newPlot("chart-money", [
    {x: days, y: data.daily.revenue || [], name: "revenue", type: "bar"},
    {x: days, y: data.daily.discount || [], name: "discount cost", type: "bar"},
    {x: days, y: data.daily.margin || [], name: "margin", type: "scatter", mode: "lines+markers"},
  ], layout("Attributed revenue, discount and margin per day",
            {barmode: "group", xaxis: dayAxis, yaxis: {rangemode: "tozero", tickformat: ",.2f"}}), config);

  const measured = data.batches.filter(b => b.profit !== null);
  if (measured.length) {
    Plotly.newPlot("chart-uplift", [{
      x: measured.map(b => b.label), y: measured.map(b => b.profit), type: "bar", name: "incremental profit",
      width: measured.length < 4 ? 0.3 : undefined,  // one batch: a bar, not a wall
      error_y: {type: "data", symmetric: false, array: measured.map(b => b.high - b.profit),
                arrayminus: measured.map(b => b.profit - b.low)},
    }], layout("Incremental profit per batch vs its holdout (95% interval)",
               {xaxis: {type: "category", automargin: true}, yaxis: {tickformat: ",.2f", zeroline: true}}), config);
  } else {
    document.getElementById("chart-uplift").innerHTML =
      '<p class="dash-chart-note">Incremental profit per batch appears once a batch with a holdout has been sent.</p>';
  }

  const points = data.global_holdout;
  if (points.length && document.getElementById("chart-global")) {
    const batches = points.map(p => p.batch);
    Plotly.newPlot("chart-global", [
      {x: batches, y: points.map(p => p.high), type: "scatter", mode: "lines", line: {width: 0},
       showlegend: false, hoverinfo: "skip"},
      {x: batches, y: points.map(p => p.low), type: "scatter", mode: "lines", line: {width: 0},
       fill: "tonexty", name: "95% interval"},
      {x: batches, y: points.map(p => p.estimate), type: "scatter", mode: "lines+markers",
       name: "cumulative incremental revenue"},
    ], layout("Cumulative incremental revenue vs the global holdout",
              {xaxis: {type: "category", automargin: true}, yaxis: {tickformat: ",.2f"}}), config);
  }
}());
