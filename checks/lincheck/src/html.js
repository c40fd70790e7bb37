// The lincheck page's controls: open scrolled to the failure point, zoom with the buttons or
// + − 0 1, jump back to the failure point with f. <body data-status> says "ok" once set up, or
// "error"; data-failure-visible whether the failure point was in view after opening.
(function () {
  'use strict';
  var body = document.body;
  window.addEventListener('error', function () { body.dataset.status = 'error'; });
  try {
    var boxes = [].slice.call(document.querySelectorAll('.timeline'));
    var label = document.getElementById('zoom-level');
    var zoom = 1;
    var failure = document.querySelector('.timeline line.failure');
    var apply = function () {
      boxes.forEach(function (b) {
        var s = b.querySelector('svg');
        s.setAttribute('width', Math.round(s.dataset.width * zoom));
        s.setAttribute('height', Math.round(s.dataset.height * zoom));
      });
      label.textContent = Math.round(zoom * 100) + '%';
    };
    var toFailure = function () {
      if (!failure) return;
      var box = failure.closest('.timeline');
      var x = Number(failure.getAttribute('x1')) * zoom;
      box.scrollLeft = Math.max(0, x - box.clientWidth / 2);
      var r = box.getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight) box.scrollIntoView({ block: 'nearest' });
    };
    var setZoom = function (z) {
      zoom = Math.max(0.1, Math.min(8, z));
      apply();
      toFailure();
    };
    var fit = function () {
      var widest = boxes.reduce(function (w, b) {
        return Math.max(w, Number(b.querySelector('svg').dataset.width));
      }, 1);
      setZoom(boxes.length ? boxes[0].clientWidth / widest : 1);
    };
    document.getElementById('zoom-in').onclick = function () { setZoom(zoom * 1.25); };
    document.getElementById('zoom-out').onclick = function () { setZoom(zoom / 1.25); };
    document.getElementById('zoom-fit').onclick = fit;
    document.getElementById('to-failure').onclick = toFailure;
    document.addEventListener('keydown', function (ev) {
      var act = { '+': function () { setZoom(zoom * 1.25); }, '=': function () { setZoom(zoom * 1.25); },
        '-': function () { setZoom(zoom / 1.25); }, '0': fit, '1': function () { setZoom(1); }, f: toFailure }[ev.key];
      if (act) { ev.preventDefault(); act(); }
    });
    // Client names follow the view when the timeline scrolls sideways.
    boxes.forEach(function (b) {
      var svg = b.querySelector('svg');
      [].forEach.call(b.querySelectorAll('text.lane'), function (t) { svg.appendChild(t); });
      b.addEventListener('scroll', function () {
        [].forEach.call(b.querySelectorAll('text.lane'), function (t) {
          t.setAttribute('x', 6 + b.scrollLeft / zoom);
        });
      });
    });
    toFailure();
    if (failure) {
      var r = failure.getBoundingClientRect();
      body.dataset.failureVisible = String(r.left >= 0 && r.right <= window.innerWidth &&
        r.top < window.innerHeight && r.bottom > 0);
    }
    if (body.dataset.status !== 'error') body.dataset.status = 'ok';
  } catch (e) {
    body.dataset.status = 'error';
    var p = document.createElement('pre');
    p.id = 'errors';
    p.textContent = 'script error: ' + (e && e.stack ? e.stack : e);
    body.insertBefore(p, body.firstChild);
  }
})();
