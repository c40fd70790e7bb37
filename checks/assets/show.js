// sixfold show: draws the lanes, the steps and the messages of one trace, and every actor's
// state at the selected step. The data is the JSON in #data (see checks/src/show.rs). Once all is
// drawn, <body data-status="ok">; on any script error, data-status="error" and #errors says why.
// data-failure-visible says whether the failure point was in view after opening.
(function () {
  'use strict';
  var SVG = 'http://www.w3.org/2000/svg';
  var COL = 74, ROW = 22, HEAD = 56, TOP = 4, LEFT = 40;

  function fail(msg) {
    document.body.dataset.status = 'error';
    var e = document.getElementById('errors');
    e.hidden = false;
    e.textContent += msg + '\n';
  }
  window.addEventListener('error', function (ev) { fail('script error: ' + ev.message); });

  function el(name, attrs, parent, text) {
    var n = document.createElementNS(SVG, name);
    for (var k in attrs) n.setAttribute(k, attrs[k]);
    if (text !== undefined) n.textContent = text;
    if (parent) parent.appendChild(n);
    return n;
  }
  function h(tag, cls, parent, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    if (parent) parent.appendChild(n);
    return n;
  }
  function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + '…' : s; }

  function main(d) {
    var col = {};
    d.lanes.forEach(function (l, i) { col[l.id] = LEFT + i * COL + COL / 2; });
    var nameOf = {};
    d.lanes.forEach(function (l) { nameOf[l.id] = l.name; });
    var rowY = function (i) { return TOP + i * ROW + ROW / 2; };
    var lanesRight = LEFT + d.lanes.length * COL;
    var width = lanesRight + 620, height = TOP + (d.steps.length + 1) * ROW;
    var diagram = document.getElementById('diagram');
    // The lane names stay in view (sticky) while the steps scroll under them.
    var head = el('svg', { width: width, height: HEAD, id: 'lane-heads' }, diagram);
    var svg = el('svg', { width: width, height: height, id: 'lanes' }, diagram);
    el('defs', {}, svg).innerHTML =
      '<marker id="head" viewBox="0 0 8 8" refX="7" refY="4" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0L8,4L0,8z" fill="context-stroke"/></marker>';

    // Row backgrounds (clickable), under everything else.
    var rows = d.steps.map(function (s, i) {
      return el('rect', { x: 0, y: TOP + i * ROW, width: width, height: ROW, class: 'row' + (i % 2 ? ' odd' : '') }, svg);
    });
    svg.addEventListener('click', function (ev) {
      var top = svg.getBoundingClientRect().top;
      select(Math.floor((ev.clientY - top - TOP) / ROW), 'nearest');
    });
    if (d.fail) rows[d.fail.step].classList.add('failure');
    if (d.mismatch) rows[d.mismatch.step].classList.add('mismatch');

    // Group headers (AZ 0, writers, ...) over the lanes, then lane names.
    var start = 0;
    d.lanes.forEach(function (l, i) {
      var last = i + 1 === d.lanes.length || d.lanes[i + 1].group !== l.group;
      if (!last) return;
      var x0 = LEFT + start * COL;
      el('rect', { x: x0 + 2, y: 2, width: (i + 1 - start) * COL - 4, height: 18, rx: 3, class: 'group' }, head);
      el('text', { x: x0 + (i + 1 - start) * COL / 2, y: 15, class: 'group-name' }, head, l.group);
      start = i + 1;
    });
    d.lanes.forEach(function (l) {
      var g = el('g', { class: 'lane', 'data-lane': l.name }, head);
      el('text', { x: col[l.id], y: 35, class: 'lane-name' }, g, l.name);
      if (l.note) el('text', { x: col[l.id], y: 49, class: 'lane-note' }, g, l.note);
    });

    // Lifelines: solid while up, dashed while down, faint before the first start; one line per
    // stretch of the same status.
    d.lanes.forEach(function (l) {
      var st = l.group === 'outside' ? 'up' : 'none', from = 0;
      var draw = function (to) {
        el('line', { x1: col[l.id], x2: col[l.id], y1: TOP + from * ROW, y2: TOP + to * ROW, class: 'life ' + st }, svg);
      };
      d.steps.forEach(function (s, i) {
        if (s.actor !== l.id || !s.after) return;
        var next = s.after.kind === 'down' ? 'down' : 'up';
        if (next === st) return;
        draw(i + 1);
        st = next;
        from = i + 1;
      });
      draw(d.steps.length);
    });

    // Messages.
    var arrowsOf = d.steps.map(function () { return []; });
    var arrowEls = d.arrows.map(function (a) {
      var x1 = col[a.src], x2 = col[a.dst], y1, y2, cls = 'msg';
      if (a.from !== null && a.to !== null) { y1 = rowY(a.from); y2 = rowY(a.to); }
      else if (a.from === null) { y2 = rowY(a.to); y1 = y2 - ROW * 0.8; }
      else if (d.lanes.some(function (l) { return l.id === a.dst && l.group === 'outside'; })) {
        y1 = rowY(a.from); y2 = y1 + ROW * 0.6;
      } else {
        // Never taken: lost, or still in flight when the trace ends.
        y1 = rowY(a.from); x2 = x1 + (x2 - x1) * 0.35; y2 = y1 + ROW * 0.6; cls += ' lost';
      }
      var line = el('line', { x1: x1, y1: y1, x2: x2, y2: y2, class: cls, 'marker-end': 'url(#head)' }, svg);
      el('title', {}, line, nameOf[a.src] + ' → ' + nameOf[a.dst] + ': ' + a.label + (cls.indexOf('lost') >= 0 ? ' (never taken)' : ''));
      if (a.from !== null) arrowsOf[a.from].push(line);
      if (a.to !== null) arrowsOf[a.to].push(line);
      return line;
    });

    // Steps: number, a mark on the actor's lane, and what happened.
    var KIND = { start: 'S', msg: '', timer: 'T', choice: '?', crash: '✕', lose_disk: '⌀' };
    d.steps.forEach(function (s, i) {
      var y = rowY(i);
      el('text', { x: 6, y: y + 4, class: 'num' }, svg, String(i + 1));
      var g = el('g', { class: 'step ' + s.kind }, svg);
      el('circle', { cx: col[s.actor], cy: y, r: 6 }, g);
      if (KIND[s.kind]) el('text', { x: col[s.actor], y: y + 3.5, class: 'mark' }, g, KIND[s.kind]);
      var text = nameOf[s.actor] + ': ' + s.input + (s.outputs ? '  ⇒ ' + s.outputs : '');
      var t = el('text', { x: lanesRight + 8, y: y + 4, class: 'what' }, svg, clip(text, 96));
      el('title', {}, t, text);
    });
    if (d.fail) {
      var fy = rowY(d.fail.step);
      el('text', { x: lanesRight - 4, y: fy + 4, class: 'fail-mark', id: 'failure-point' }, svg, '✗ ' + d.fail.property);
    }

    // The panel: the selected step, and every actor's state after it.
    var panel = document.getElementById('panel');
    var selected = -1;
    function select(i, block) {
      if (i < 0 || i >= d.steps.length) return;
      if (selected >= 0) {
        rows[selected].classList.remove('selected');
        arrowsOf[selected].forEach(function (a) { a.classList.remove('hot'); });
      }
      selected = i;
      rows[i].classList.add('selected');
      arrowsOf[i].forEach(function (a) { a.classList.add('hot'); a.parentNode.appendChild(a); });
      document.body.dataset.step = String(i + 1);
      drawPanel(i);
      if (block) reveal(i, block === 'center');
    }

    // Scrolls the diagram so that row i is in view below the sticky lane names.
    function reveal(i, center) {
      var y = HEAD + TOP + i * ROW, view = diagram.clientHeight;
      if (center) diagram.scrollTop = y - view / 2;
      else if (y < diagram.scrollTop + HEAD) diagram.scrollTop = y - HEAD - ROW;
      else if (y + ROW > diagram.scrollTop + view) diagram.scrollTop = y + 2 * ROW - view;
    }

    function drawPanel(i) {
      var s = d.steps[i];
      panel.innerHTML = '';
      var cap = h('div', 'caption', panel);
      h('div', 'where', cap, 'step ' + (i + 1) + ' of ' + d.steps.length + ' · trace line ' + s.line);
      h('div', 'who', cap, nameOf[s.actor] + ': ' + s.input);
      if (s.outputs) h('div', 'out', cap, '⇒ ' + s.outputs);
      if (d.fail && d.fail.step === i) {
        var f = h('div', 'broken', panel);
        f.id = 'violated-property';
        h('b', '', f, '✗ "' + d.fail.property + '" breaks here');
        if (d.fail.judges) h('div', 'judges', f, 'judged on: ' + d.fail.judges);
      } else if (d.fail && i > d.fail.step) {
        h('div', 'after-fail', panel, '"' + d.fail.property + '" broke at step ' + (d.fail.step + 1));
      }
      if (d.mismatch && d.mismatch.step === i) {
        var m = h('div', 'broken', panel);
        h('b', '', m, '≠ diverges from the model here');
        h('pre', '', m, d.mismatch.detail);
      }
      var state = {};
      for (var k = 0; k <= i; k++) {
        if (d.steps[k].after) state[d.steps[k].actor] = d.steps[k].after;
      }
      var replayed = !!s.after;
      // A writer is a zombie once a writer of a newer epoch has opened the volume.
      var newest = 0;
      for (var w in state) {
        if (state[w].kind === 'writer' && !state[w].opening) newest = Math.max(newest, state[w].epoch);
      }
      var group = null, box = null;
      d.lanes.forEach(function (l) {
        if (l.group === 'outside') return;
        if (l.group !== group) {
          group = l.group;
          h('h3', '', panel, group);
          box = h('div', 'cards', panel);
        }
        card(box, l, state[l.id], l.id === s.actor, newest);
      });
      if (d.mismatch && d.mismatch.step === i) {
        h('p', 'after-fail', panel, 'the states before this step: the model does not take it as recorded');
      } else if (!replayed) {
        h('p', 'after-fail', panel, 'not replayed (the trace diverged from the model before this step): the states as of the divergence');
      }
    }

    function chips(parent, log) {
      var row = h('div', 'chips', parent);
      if (!log.records.length) h('span', 'empty', row, 'empty');
      log.records.forEach(function (r) {
        var c = h('span', 'chip e' + Math.min(r[3], 4) + (r[4] ? ' void' : '') + (r[0] <= log.scl ? '' : ' above'), row,
          r[0] + (r[1] ? ':k' + r[1] : '') + '=' + r[2]);
        c.title = 'LSN ' + r[0] + ', key ' + r[1] + ', value ' + r[2] + ', written in epoch ' + r[3] +
          (r[4] ? ', voided by a truncation' : '') + (r[0] <= log.scl ? '' : ', above SCL');
      });
    }
    function logFacts(parent, log) {
      var t = 'epoch ' + log.epoch + ' · SCL ' + log.scl;
      if (log.truncations.length) {
        t += ' · truncated ' + log.truncations.map(function (x) { return '(' + x[1] + ',' + x[2] + ']@e' + x[0]; }).join(' ');
      }
      h('div', 'facts', parent, t);
    }

    function card(parent, lane, st, changed, newest) {
      var c = h('div', 'card' + (changed ? ' changed' : ''), parent);
      c.dataset.actor = lane.name;
      h('div', 'title', c, lane.name + (lane.note ? ' (' + lane.note + ')' : ''));
      if (!st) { h('div', 'facts', c, 'not started'); return; }
      if (st.kind === 'down') {
        h('div', 'facts down', c, 'down');
        if (st.disk) { h('div', 'facts', c, 'on disk:'); chips(c, st.disk); logFacts(c, st.disk); }
        else if (lane.group.indexOf('AZ') === 0) h('div', 'facts', c, 'disk: nothing');
        return;
      }
      if (st.kind === 'segment') {
        chips(c, st.log);
        logFacts(c, st.log);
        if (st.disk) { h('div', 'facts warn', c, 'on disk (differs):'); chips(c, st.disk); }
      } else if (st.kind === 'writer') {
        var phase = st.opening ? 'opening: asked [' + st.opening[0] + '], answered [' + st.opening[1] + ']' : 'open';
        if (st.deposed) phase += ' · deposed';
        else if (!st.lease) phase += ' · lease expired';
        h('div', 'facts' + (st.deposed ? ' warn' : ''), c, phase);
        if (st.epoch < newest) h('div', 'facts warn zombie', c, 'zombie: epoch ' + newest + ' has opened the volume');
        h('div', 'marks', c, 'VCL = VDL ' + st.vdl + ' · last LSN ' + st.last_lsn);
        h('div', 'facts', c, 'SCL seen: [' + st.scl.join(', ') + '] → PGCL ' + st.pgcl);
        h('div', 'facts', c, 'commit queue: ' + (st.queue.length ? '[' + st.queue.join(', ') + ']' : 'empty'));
        if (st.truncations.length) {
          h('div', 'facts', c, 'truncations: ' + st.truncations.map(function (x) { return '(' + x[1] + ',' + x[2] + ']@e' + x[0]; }).join(' '));
        }
      } else if (st.kind === 'client') {
        h('div', 'facts', c, 'done ' + st.done + ' of ' + st.script.length + (st.done < st.script.length ? ' · next ' + st.script[st.done] : ''));
      }
    }

    document.addEventListener('keydown', function (ev) {
      var keys = {
        ArrowDown: 1, ArrowRight: 1, j: 1, n: 1, ArrowUp: -1, ArrowLeft: -1, k: -1, p: -1,
        PageDown: 10, PageUp: -10
      };
      var to = null;
      if (keys[ev.key]) to = Math.max(0, Math.min(d.steps.length - 1, selected + keys[ev.key]));
      else if (ev.key === 'Home') to = 0;
      else if (ev.key === 'End') to = d.steps.length - 1;
      else if (ev.key === 'f' && d.fail) to = d.fail.step;
      if (to === null) return;
      ev.preventDefault();
      select(to, 'nearest');
    });

    var first = d.fail ? d.fail.step : d.mismatch ? d.mismatch.step : d.steps.length - 1;
    if (d.steps.length) select(first, 'center');
    if (d.fail) {
      var r = rows[d.fail.step].getBoundingClientRect(), v = diagram.getBoundingClientRect();
      document.body.dataset.failureVisible = String(r.top >= v.top + HEAD && r.bottom <= v.bottom);
    }
  }

  try {
    main(JSON.parse(document.getElementById('data').textContent));
    if (document.body.dataset.status !== 'error') document.body.dataset.status = 'ok';
  } catch (e) {
    fail('script error: ' + (e && e.stack ? e.stack : e));
  }
})();
