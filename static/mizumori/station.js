/*
 * The chart on the station page (/stations/<code>/), drawn with the vendored uPlot.
 *
 * Everything drawn comes from the JSON the server embedded with Django's json_script
 * (#station-chart-data): times, values, series, scales and thresholds with their labels, colours
 * and dash patterns (see dashboard/views.py, station_chart). Strings from data reach the page only
 * as textContent, never as HTML. The page has no inline script, so it keeps working under a
 * Content-Security-Policy without 'unsafe-inline'.
 */
(function (window, document) {
  "use strict";

  var uPlot = window.uPlot;
  var Mizumori = window.Mizumori;
  var source = document.getElementById("station-chart-data");
  var container = document.getElementById("station-chart");
  if (!uPlot || !source || !container) {
    return;
  }

  var chart = JSON.parse(source.textContent);
  var DAY_SECONDS = 86400;

  // Series and axis labels are data kept per language: the page's (static/mizumori/i18n.js).
  function labelOf(item) {
    return Mizumori.localized(item, "label");
  }

  function valueText(value) {
    return value == null ? "—" : value.toFixed(chart.digits) + " " + chart.unit;
  }

  // --- time: the site's zone (TIME_ZONE, Asia/Tokyo by default), whatever zone the browser is in.

  function zoned(seconds) {
    return uPlot.tzDate(new Date(seconds * 1000), chart.time_zone);
  }

  var dayText = uPlot.fmtDate("{M}/{D}");
  var clockText = uPlot.fmtDate("{HH}:{mm}");
  var fullText = uPlot.fmtDate("{YYYY}-{MM}-{DD} {HH}:{mm}");

  // 24-hour clock ticks; the date is written under the first tick of each day.
  function timeTicks(u, splits, axisIndex, space, increment) {
    var previousDay = null;
    return splits.map(function (seconds) {
      var date = zoned(seconds);
      var day = dayText(date);
      if (increment >= DAY_SECONDS) {
        return day;
      }
      var label = day === previousDay ? clockText(date) : clockText(date) + "\n" + day;
      previousDay = day;
      return label;
    });
  }

  // --- scales: always wide enough to show the thresholds drawn on them.

  function thresholdsOn(scaleKey) {
    return chart.thresholds.filter(function (line) {
      return line.scale === scaleKey;
    });
  }

  function rangeOf(scale) {
    return function (u, dataMin, dataMax) {
      var values = thresholdsOn(scale.key).map(function (line) {
        return line.value;
      });
      if (dataMin != null && isFinite(dataMin)) {
        values.push(dataMin, dataMax);
      }
      if (scale.from_zero) {
        values.push(0);
      }
      if (!values.length) {
        return [0, 1];
      }
      var low = Math.min.apply(null, values);
      var high = Math.max.apply(null, values);
      var pad = (high - low) * 0.08 || Math.abs(high) * 0.1 || 1;
      return [scale.from_zero ? Math.max(0, low - pad) : low - pad, high + pad];
    };
  }

  // --- thresholds: lines on the canvas (under the data), labels as text above the plot.

  function drawThresholdLines(u) {
    var context = u.ctx;
    var ratio = uPlot.pxRatio || window.devicePixelRatio || 1;
    var box = u.bbox;
    context.save();
    context.beginPath();
    context.rect(box.left, box.top, box.width, box.height);
    context.clip();
    chart.thresholds.forEach(function (line) {
      if (!inView(u, line)) {
        return;
      }
      var y = Math.round(u.valToPos(line.value, line.scale, true));
      context.setLineDash(line.dash.map(function (step) { return step * ratio; }));
      // A darker line under the coloured one keeps yellow (level 2) visible on white.
      [[line.outline, line.width + 2], [line.colour, line.width]].forEach(function (pass) {
        context.strokeStyle = pass[0];
        context.lineWidth = pass[1] * ratio;
        context.beginPath();
        context.moveTo(box.left, y);
        context.lineTo(box.left + box.width, y);
        context.stroke();
      });
    });
    context.restore();
  }

  function inView(u, line) {
    var scale = u.scales[line.scale];
    return Boolean(scale) && scale.min != null && line.value >= scale.min && line.value <= scale.max;
  }

  function textSpan(text, className) {
    var element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  function thresholdLabel(line) {
    var label = document.createElement("div");
    label.className = "mz-threshold-label";
    // The value before the names: on a narrow screen the end of a long label is cut off, not this.
    label.appendChild(textSpan(line.badge, "mz-chip mz-level-" + line.level_css));
    label.appendChild(textSpan(line.value_text, "mz-threshold-value"));
    label.appendChild(textSpan(labelOf(line), "mz-threshold-name"));
    return label;
  }

  var labels = null;

  function placeThresholdLabels(u) {
    if (labels === null) {
      var layer = document.createElement("div");
      layer.className = "mz-threshold-labels";
      labels = chart.thresholds.map(function (line) {
        return layer.appendChild(thresholdLabel(line));
      });
      u.over.appendChild(layer);
    }
    var shown = [];
    chart.thresholds.forEach(function (line, index) {
      var visible = inView(u, line);
      labels[index].hidden = !visible;
      if (visible) {
        shown.push({ element: labels[index], y: u.valToPos(line.value, line.scale) });
      }
    });
    // Each label sits just above its line; where lines are close, the upper label moves up so that
    // none covers another (from the bottom of the plot upwards).
    shown.sort(function (a, b) { return b.y - a.y; });
    var ceiling = Infinity;
    shown.forEach(function (item) {
      var height = item.element.offsetHeight;
      var top = Math.max(0, Math.min(item.y - height - 1, ceiling - height));
      item.element.style.top = top + "px";
      ceiling = top;
    });
  }

  // --- the plot

  var series = [
    {
      value: function (u, seconds) {
        return seconds == null ? "—" : fullText(zoned(seconds));
      },
    },
  ];
  chart.series.forEach(function (item) {
    var options = {
      label: labelOf(item),
      scale: item.scale,
      stroke: item.colour,
      width: item.width || 2,
      dash: item.dash && item.dash.length ? item.dash : undefined,
      value: function (u, value) {
        return valueText(value);
      },
    };
    if (item.type === "bars") {
      // Each bar spans the ten minutes that end at its time (align -1: drawn left of x).
      options.fill = item.colour;
      options.width = 1;
      options.paths = uPlot.paths.bars({ align: -1, size: [0.9, Infinity] });
      options.points = { show: false };
    }
    series.push(options);
  });

  // Canvas text in the page's font stack, whose last Japanese font is the web font (site.css):
  // uPlot's own stack has no Japanese font, and a kiosk without one would draw boxes for good.
  var pageFonts = window.getComputedStyle(document.body).fontFamily;
  var axisFont = "12px " + pageFonts;
  var labelFont = "bold 12px " + pageFonts;
  var axes = [{ values: timeTicks, space: 55, size: 48, font: axisFont }];
  chart.scales.forEach(function (scale) {
    axes.push({
      font: axisFont,
      labelFont: labelFont,
      scale: scale.key,
      side: scale.side === "right" ? 1 : 3,
      label: labelOf(scale),
      labelSize: 20,
      size: 52,
      // One grid, from the first axis; a second one would not line up.
      grid: { show: scale.side !== "right" },
    });
  });

  var scales = {
    x: {
      time: true,
      range: function () {
        return chart.x_range;
      },
    },
  };
  chart.scales.forEach(function (scale) {
    scales[scale.key] = { range: rangeOf(scale) };
  });

  function chartSize() {
    var width = Math.max(container.clientWidth, 200);
    return { width: width, height: Math.round(Math.min(Math.max(width * 0.5, 300), 420)) };
  }

  var size = chartSize();
  var plot = new uPlot(
    {
      width: size.width,
      height: size.height,
      tzDate: zoned,
      series: series,
      // The forecast's 80 % band, between its upper and lower series (forecasts/charts.py).
      bands: chart.bands || [],
      axes: axes,
      scales: scales,
      hooks: { drawAxes: [drawThresholdLines], draw: [placeThresholdLabels] },
    },
    [chart.x].concat(chart.series.map(function (item) { return item.values; })),
    container
  );

  // Drawn again once the web font is in (static/mizumori/fonts.js): the axes' canvas text, and the
  // threshold labels' places, measured from their height in the font of the time.
  document.addEventListener("mizumori:fonts", function () { plot.redraw(false, true); });

  // Follow the container's width (phones turning, windows resizing).
  var lastWidth = container.clientWidth;
  function followWidth() {
    var width = container.clientWidth;
    if (width && width !== lastWidth) {
      lastWidth = width;
      plot.setSize(chartSize());
    }
  }
  if (window.ResizeObserver) {
    new window.ResizeObserver(followWidth).observe(container);
  } else {
    window.addEventListener("resize", followWidth);
  }
})(window, document);
