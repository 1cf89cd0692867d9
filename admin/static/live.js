// Live event stream: one EventSource, reconnected with backoff when the
// server closes it. Every value is inserted as text, never as HTML.
(function () {
  'use strict';
  var list = document.getElementById('live-events');
  if (!list) { return; }
  var status = document.getElementById('stream-status');
  var empty = document.getElementById('live-empty');
  var only = document.getElementById('only-anomalies');
  var types = list.dataset.types.split(' ');
  var maxItems = 200, retry = 1000, es = null, timer = null;

  function setStatus(text, state) {
    status.textContent = text;
    status.dataset.state = state;
  }
  function el(tag, cls, text, parent) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text) { e.textContent = text; }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function link(href, text, cls, parent) {
    var a = el('a', cls, text, parent);
    a.href = href;
    return a;
  }
  function add(msg) {
    var e;
    try { e = JSON.parse(msg.data); } catch (err) { return; }
    var cls = 'ev';
    if (e.type === 'anomaly' || e.type === 'refresh_reused') { cls += ' warn'; }
    else if (e.type === 'rejected' || e.type === 'revoked') { cls += ' bad'; }
    var li = el('li', cls);
    var t = el('time', '', new Date(e.time).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'), li);
    t.dateTime = e.time;
    el('span', 'type', e.type, li);
    if (e.reason) { li.appendChild(document.createTextNode(' ')); el('span', 'reason', e.reason, li); }
    var meta = el('div', 'meta', '', li);
    if (e.subject) { link('/admin/subject?subject=' + encodeURIComponent(e.subject), e.subject, '', meta); }
    if (e.handle) { link('/admin/sessions/' + encodeURIComponent(e.handle), e.handle, 'mono', meta); }
    if (e.client && e.client.ip) { el('span', 'ip', e.client.ip, meta); }
    if (e.actor) { el('span', 'actor', 'by ' + e.actor, meta); }
    if (e.client && e.client.user_agent) { el('div', 'ua', e.client.user_agent, li); }
    if (e.detail) {
      var dl = el('dl', 'detail', '', li);
      Object.keys(e.detail).forEach(function (k) { el('dt', '', k, dl); el('dd', '', e.detail[k], dl); });
    }
    list.insertBefore(li, list.firstChild);
    while (list.children.length > maxItems) { list.removeChild(list.lastChild); }
    empty.hidden = true;
  }
  function connect() {
    clearTimeout(timer);
    if (es) { es.close(); }
    setStatus('Connecting…', 'connecting');
    es = new EventSource(list.dataset.src + (only.checked ? '?type=anomaly' : ''));
    es.onopen = function () { retry = 1000; setStatus('Connected', 'open'); };
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. an HTTP error): try again later.
        setStatus('Disconnected, retrying in ' + Math.round(retry / 1000) + 's', 'closed');
        timer = setTimeout(connect, retry);
        retry = Math.min(retry * 2, 30000);
      } else {
        setStatus('Reconnecting…', 'connecting');
      }
    };
    types.forEach(function (t) { es.addEventListener(t, add); });
  }
  only.addEventListener('change', connect);
  document.getElementById('clear').addEventListener('click', function () {
    list.textContent = '';
    empty.hidden = false;
  });
  connect();
})();
