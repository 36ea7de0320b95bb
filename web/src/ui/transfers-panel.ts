import { h, setText } from '../dom';
import { formatBytes, formatDuration, formatRateKbps } from '../format';
import { averageRateKbps, etaSeconds, isFinished, type TransferStore, type TransferView } from '../transfers';

interface Row {
  item: HTMLLIElement;
  name: HTMLElement;
  badge: HTMLElement;
  detail: HTMLElement;
  progress: HTMLProgressElement;
  stats: HTMLElement;
  message: HTMLElement;
  pause: HTMLButtonElement;
  cancel: HTMLButtonElement;
}

const stateWords: Record<TransferView['state'], string> = {
  queued: 'Waiting',
  running: 'Running',
  paused: 'Paused',
  completed: 'Completed',
  failed: 'Failed',
  canceled: 'Canceled',
};

type Tab = 'active' | 'completed';

/**
 * Transfers in two tabs, Active and Completed (this session's). Rows are built once and updated in place
 * on every change, so a focused Pause button keeps its focus while the numbers move.
 */
export class TransfersPanel {
  readonly element: HTMLElement;
  private readonly rows = new Map<string, Row>();
  private readonly tabs: Record<Tab, HTMLButtonElement>;
  private readonly panels: Record<Tab, HTMLElement>;
  private readonly lists: Record<Tab, HTMLUListElement>;
  private readonly empty: Record<Tab, HTMLElement>;
  private readonly clear: HTMLButtonElement;

  constructor(
    private readonly store: TransferStore,
    private readonly announce: (text: string) => void,
  ) {
    const tab = (which: Tab, label: string) =>
      h('button', { type: 'button', role: 'tab', id: `tab-${which}`, 'aria-controls': `panel-${which}`, onclick: () => this.select(which), onkeydown: (e: Event) => this.onTabKey(e as KeyboardEvent) }, label);
    this.tabs = { active: tab('active', 'Active'), completed: tab('completed', 'Completed') };
    this.lists = { active: h('ul', { class: 'transfer-list' }), completed: h('ul', { class: 'transfer-list' }) };
    this.empty = { active: h('p', { class: 'empty' }, 'No transfers running. Upload or download to start one.'), completed: h('p', { class: 'empty' }, 'Nothing finished yet in this session.') };
    this.clear = h('button', { type: 'button', class: 'secondary', onclick: () => this.store.clearFinished() }, 'Clear');
    this.panels = {
      active: h('div', { role: 'tabpanel', id: 'panel-active', 'aria-labelledby': 'tab-active', tabindex: 0 }, this.empty.active, this.lists.active),
      completed: h('div', { role: 'tabpanel', id: 'panel-completed', 'aria-labelledby': 'tab-completed', tabindex: 0 }, h('div', { class: 'panel-tools' }, this.clear), this.empty.completed, this.lists.completed),
    };
    this.element = h(
      'section',
      { class: 'transfers', 'aria-labelledby': 'transfers-title' },
      h('h2', { id: 'transfers-title' }, 'Transfers'),
      h('div', { role: 'tablist', 'aria-label': 'Transfers', class: 'tabs' }, this.tabs.active, this.tabs.completed),
      this.panels.active,
      this.panels.completed,
    );
    this.select('active');
    store.subscribe(() => this.render());
  }

  select(which: Tab): void {
    for (const t of ['active', 'completed'] as const) {
      const on = t === which;
      this.tabs[t].setAttribute('aria-selected', String(on));
      this.tabs[t].tabIndex = on ? 0 : -1;
      this.panels[t].hidden = !on;
    }
  }

  /** Arrow keys move between tabs (WAI-ARIA tabs pattern). */
  private onTabKey(event: KeyboardEvent): void {
    if (!['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(event.key)) return;
    event.preventDefault();
    const next: Tab = event.key === 'Home' ? 'active' : event.key === 'End' ? 'completed' : this.tabs.active.getAttribute('aria-selected') === 'true' ? 'completed' : 'active';
    this.select(next);
    this.tabs[next].focus();
  }

  private render(): void {
    const views = this.store.list();
    const seen = new Set<string>();
    const counts: Record<Tab, number> = { active: 0, completed: 0 };
    for (const view of views) {
      seen.add(view.id);
      const tab: Tab = isFinished(view.state) ? 'completed' : 'active';
      counts[tab]++;
      let row = this.rows.get(view.id);
      if (!row) {
        row = this.row(view);
        this.rows.set(view.id, row);
      }
      const wasFinished = row.item.dataset.state !== undefined && isFinished(row.item.dataset.state as TransferView['state']);
      this.update(row, view);
      if (row.item.parentElement !== this.lists[tab]) this.lists[tab].prepend(row.item);
      if (!wasFinished && isFinished(view.state)) this.announce(`${view.name}: ${stateWords[view.state].toLowerCase()}${view.message ? `. ${view.message}` : ''}`);
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.item.remove();
        this.rows.delete(id);
      }
    }
    setText(this.tabs.active, `Active (${counts.active})`);
    setText(this.tabs.completed, `Completed (${counts.completed})`);
    this.empty.active.hidden = counts.active > 0;
    this.empty.completed.hidden = counts.completed > 0;
    this.clear.disabled = counts.completed === 0;
  }

  private row(view: TransferView): Row {
    const name = h('strong', { class: 't-name' });
    const badge = h('span', { class: 'badge' });
    const detail = h('span', { class: 't-detail' });
    const progress = h('progress', { max: 1000, value: 0 });
    const stats = h('div', { class: 't-stats' });
    const message = h('p', { class: 't-message' });
    const pause = h('button', { type: 'button', class: 'secondary', onclick: () => this.togglePause(view.id) });
    const cancel = h('button', { type: 'button', class: 'secondary danger', onclick: () => void this.cancel(view.id, cancel) }, 'Cancel');
    const item = h(
      'li',
      { class: 'transfer' },
      h('div', { class: 't-head' }, h('span', { class: 't-dir', 'aria-hidden': 'true' }, view.direction === 'upload' ? '↑' : '↓'), name, badge),
      detail,
      progress,
      stats,
      message,
      h('div', { class: 't-actions' }, pause, cancel),
    );
    return { item, name, badge, detail, progress, stats, message, pause, cancel };
  }

  private update(row: Row, view: TransferView): void {
    const finished = isFinished(view.state);
    row.item.dataset.state = view.state;
    setText(row.name, view.name);
    setText(row.badge, view.transport === 'high-speed' ? (view.overHttps ? 'High speed · over HTTPS' : 'High speed') : 'Standard');
    setText(row.detail, `${view.direction === 'upload' ? 'Upload' : 'Download'} ${view.detail}`);
    const fraction = view.bytesTotal ? Math.min(1, view.bytesDone / view.bytesTotal) : view.state === 'completed' ? 1 : 0;
    row.progress.value = Math.round(fraction * 1000);
    row.progress.setAttribute('aria-label', `${view.name} progress`);
    row.progress.setAttribute('aria-valuetext', `${Math.floor(fraction * 100)}%`);
    const parts: string[] = [stateWords[view.state]];
    if (view.bytesTotal !== null) parts.push(`${Math.floor(fraction * 100)}%`, `${formatBytes(view.bytesDone)} of ${formatBytes(view.bytesTotal)}`);
    else if (view.bytesDone > 0) parts.push(formatBytes(view.bytesDone));
    if (view.state === 'running') {
      parts.push(formatRateKbps(view.rateKbps));
      const eta = etaSeconds(view);
      if (eta !== null) parts.push(`about ${formatDuration(eta)} left`);
    } else if (view.state === 'completed' && view.bytesDone > 0) {
      const rate = view.transport === 'high-speed' && view.rateKbps > 0 ? view.rateKbps : averageRateKbps(view);
      parts.push(`average ${formatRateKbps(rate)}`);
    }
    if (view.filesTotal !== null && view.filesTotal > 1) parts.push(`${view.filesDone} of ${view.filesTotal} files`);
    setText(row.stats, parts.join(' · '));
    setText(row.message, view.message ?? '');
    row.message.hidden = view.message === null;
    row.message.classList.toggle('error', view.state === 'failed');
    const paused = view.state === 'paused';
    setText(row.pause, paused ? 'Resume' : 'Pause');
    row.pause.setAttribute('aria-label', `${paused ? 'Resume' : 'Pause'} ${view.name}`);
    row.cancel.setAttribute('aria-label', `Cancel ${view.name}`);
    const controllable = !finished && this.store.control(view.id) !== null;
    row.pause.hidden = !controllable;
    row.cancel.hidden = !controllable;
  }

  private togglePause(id: string): void {
    const view = this.store.list().find((v) => v.id === id);
    const control = this.store.control(id);
    if (!view || !control) return;
    if (view.state === 'paused') control.resume();
    else control.pause();
  }

  private async cancel(id: string, button: HTMLButtonElement): Promise<void> {
    const control = this.store.control(id);
    if (!control) return;
    button.disabled = true;
    try {
      await control.cancel();
    } finally {
      button.disabled = false;
    }
  }
}
