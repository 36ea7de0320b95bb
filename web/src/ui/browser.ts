import type { ObjectList } from '../../../contracts';
import type { Api } from '../api';
import { h, replaceChildren, setText } from '../dom';
import { describeError } from '../errors';
import { formatBytes, formatDate } from '../format';
import { fromDrop, fromInput, type PickedFile } from '../pick';
import type { DownloadSelection } from '../standard-download';

/** Rows per page of the listing. */
export const pageSize = 100;

export interface BrowserActions {
  upload(files: PickedFile[], prefix: string): void;
  /** High speed: pick from the agent's shared folders instead of the browser's file picker. */
  uploadShared(prefix: string): void;
  download(selection: DownloadSelection): void;
}

const nameOf = (keyOrPrefix: string, prefix: string) => keyOrPrefix.slice(prefix.length).replace(/\/$/, '');

/**
 * One folder level of a bucket at a time (prefixes as folders), a page of `pageSize` rows at a time,
 * with selection for downloads, and uploads by picker or drag and drop into the folder shown.
 */
export class ObjectBrowser {
  readonly element: HTMLElement;
  private bucket = '';
  private prefix = '';
  /** Cursors of the pages seen so far: page n starts at cursors[n]. */
  private cursors: (string | undefined)[] = [undefined];
  private page = 0;
  private listing: ObjectList | null = null;
  private readonly selected = new Set<string>();
  private loading: AbortController | null = null;

  private readonly crumbs = h('ol', { class: 'crumbs' });
  private readonly body = h('tbody');
  private readonly caption = h('caption', { class: 'visually-hidden' });
  private readonly status = h('p', { class: 'browser-status', role: 'status' });
  private readonly selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select all on this page', onchange: () => this.toggleAll() });
  private readonly previous = h('button', { type: 'button', class: 'secondary', onclick: () => void this.go(this.page - 1) }, 'Previous');
  private readonly next = h('button', { type: 'button', class: 'secondary', onclick: () => void this.go(this.page + 1) }, 'Next');
  private readonly pageLabel = h('span', { class: 'page-label' });
  private readonly downloadButton = h('button', { type: 'button', onclick: () => this.downloadSelected() }, 'Download');
  private readonly sharedButton = h('button', { type: 'button', onclick: () => this.actions.uploadShared(this.prefix) }, 'Upload from shared folders');
  private readonly filesInput = h('input', { type: 'file', multiple: true, class: 'visually-hidden', tabindex: -1, 'aria-hidden': 'true', onchange: () => this.picked(this.filesInput) });
  private readonly folderInput = h('input', { type: 'file', webkitdirectory: true, class: 'visually-hidden', tabindex: -1, 'aria-hidden': 'true', onchange: () => this.picked(this.folderInput) });
  private readonly dropHint = h('div', { class: 'drop-hint', 'aria-hidden': 'true' });

  constructor(
    private readonly api: () => Api,
    private readonly actions: BrowserActions,
    private readonly announce: (text: string) => void,
  ) {
    const table = h(
      'table',
      { class: 'objects' },
      this.caption,
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'select' }, this.selectAll), h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'num' }, 'Size'), h('th', { scope: 'col' }, 'Modified'))),
      this.body,
    );
    this.element = h(
      'section',
      { class: 'browser', 'aria-labelledby': 'browser-title' },
      h('h2', { id: 'browser-title', class: 'visually-hidden' }, 'Objects'),
      h('nav', { 'aria-label': 'Folder path' }, this.crumbs),
      h(
        'div',
        { class: 'toolbar', role: 'toolbar', 'aria-label': 'Object actions' },
        h('button', { type: 'button', onclick: () => this.filesInput.click() }, 'Upload files'),
        h('button', { type: 'button', onclick: () => this.folderInput.click() }, 'Upload folder'),
        this.sharedButton,
        this.downloadButton,
        h('button', { type: 'button', class: 'secondary', onclick: () => void this.load() }, 'Refresh'),
        this.filesInput,
        this.folderInput,
      ),
      h('div', { class: 'table-wrap' }, table),
      this.status,
      h('nav', { class: 'pager', 'aria-label': 'Pages' }, this.previous, this.pageLabel, this.next),
      this.dropHint,
    );
    this.element.addEventListener('dragover', (e) => this.onDragOver(e));
    this.element.addEventListener('dragleave', (e) => {
      if (!this.element.contains(e.relatedTarget as Node | null)) this.element.classList.remove('dropping');
    });
    this.element.addEventListener('drop', (e) => this.onDrop(e));
    this.setHighSpeed(false, false);
  }

  get location(): { bucket: string; prefix: string } {
    return { bucket: this.bucket, prefix: this.prefix };
  }

  /** High speed uploads come from the agent's shared folders; the browser's pickers stay for Standard. */
  setHighSpeed(on: boolean, agentReady: boolean): void {
    this.sharedButton.hidden = !on;
    this.sharedButton.disabled = !agentReady;
    this.sharedButton.title = agentReady ? '' : 'Needs the Slipstream agent (see the note above)';
  }

  async open(bucket: string, prefix = ''): Promise<void> {
    this.bucket = bucket;
    this.prefix = prefix;
    this.cursors = [undefined];
    this.page = 0;
    await this.load();
  }

  async load(): Promise<void> {
    this.loading?.abort();
    const controller = new AbortController();
    this.loading = controller;
    this.selected.clear();
    setText(this.status, 'Loading…');
    this.renderCrumbs();
    try {
      const cursor = this.cursors[this.page];
      const listing = await this.api().listObjects(this.bucket, { prefix: this.prefix, delimiter: '/', limit: pageSize, ...(cursor ? { cursor } : {}) }, controller.signal);
      if (controller.signal.aborted) return;
      this.listing = listing;
      this.cursors[this.page + 1] = listing.nextCursor ?? undefined;
      this.renderRows();
    } catch (error) {
      if (controller.signal.aborted) return;
      this.listing = null;
      replaceChildren(this.body);
      setText(this.status, describeError(error));
    }
  }

  private async go(page: number): Promise<void> {
    if (page < 0 || (page > this.page && !this.cursors[page])) return;
    this.page = page;
    await this.load();
  }

  private renderCrumbs(): void {
    const parts = this.prefix.split('/').filter(Boolean);
    const crumb = (label: string, prefix: string, current: boolean) =>
      h('li', {}, current ? h('span', { 'aria-current': 'location' }, label) : h('button', { type: 'button', class: 'link', onclick: () => void this.open(this.bucket, prefix) }, label));
    replaceChildren(this.crumbs, crumb(this.bucket, '', parts.length === 0), ...parts.map((part, i) => crumb(part, `${parts.slice(0, i + 1).join('/')}/`, i === parts.length - 1)));
    setText(this.caption, `Objects in ${this.bucket}/${this.prefix}`);
    setText(this.dropHint, `Drop files or folders to upload them to ${this.bucket}/${this.prefix}`);
  }

  private renderRows(): void {
    const listing = this.listing!;
    const rows: HTMLTableRowElement[] = [];
    for (const prefix of listing.prefixes) {
      const name = nameOf(prefix, this.prefix);
      rows.push(
        h(
          'tr',
          { class: 'folder' },
          h('td', { class: 'select' }, this.checkbox(prefix, `Select folder ${name}`)),
          h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => void this.open(this.bucket, prefix) }, h('span', { class: 'icon folder', 'aria-hidden': 'true' }), `${name}/`)),
          h('td', { class: 'num' }, '–'),
          h('td', {}, '–'),
        ),
      );
    }
    for (const object of listing.objects) {
      const name = nameOf(object.key, this.prefix);
      rows.push(
        h(
          'tr',
          {},
          h('td', { class: 'select' }, this.checkbox(object.key, `Select ${name}`)),
          h('td', {}, h('span', { class: 'icon file', 'aria-hidden': 'true' }), name),
          h('td', { class: 'num' }, formatBytes(object.sizeBytes)),
          h('td', {}, formatDate(object.lastModified)),
        ),
      );
    }
    replaceChildren(this.body, ...rows);
    const count = rows.length;
    setText(this.status, count === 0 ? (this.page === 0 ? 'This folder is empty. Drop files here or use Upload.' : 'No more objects.') : '');
    this.previous.disabled = this.page === 0;
    this.next.disabled = !listing.nextCursor;
    setText(this.pageLabel, `Page ${this.page + 1}`);
    this.updateSelection();
  }

  private checkbox(id: string, label: string): HTMLInputElement {
    const box = h('input', { type: 'checkbox', 'aria-label': label });
    box.checked = this.selected.has(id);
    box.addEventListener('change', () => {
      if (box.checked) this.selected.add(id);
      else this.selected.delete(id);
      this.updateSelection();
    });
    box.dataset.id = id;
    return box;
  }

  private toggleAll(): void {
    const on = this.selectAll.checked;
    for (const box of this.body.querySelectorAll<HTMLInputElement>('input[type=checkbox]')) {
      box.checked = on;
      if (on) this.selected.add(box.dataset.id!);
      else this.selected.delete(box.dataset.id!);
    }
    this.updateSelection();
  }

  private updateSelection(): void {
    const total = (this.listing?.objects.length ?? 0) + (this.listing?.prefixes.length ?? 0);
    this.selectAll.checked = total > 0 && this.selected.size === total;
    this.selectAll.indeterminate = this.selected.size > 0 && this.selected.size < total;
    this.downloadButton.disabled = this.selected.size === 0;
    setText(this.downloadButton, this.selected.size > 0 ? `Download (${this.selected.size})` : 'Download');
  }

  private downloadSelected(): void {
    if (!this.listing || this.selected.size === 0) return;
    const keys = this.listing.objects.filter((o) => this.selected.has(o.key)).map((o) => ({ key: o.key, sizeBytes: o.sizeBytes }));
    const prefixes = this.listing.prefixes.filter((p) => this.selected.has(p));
    this.actions.download({ bucket: this.bucket, basePrefix: this.prefix, keys, prefixes });
    this.selected.clear();
    for (const box of this.body.querySelectorAll<HTMLInputElement>('input[type=checkbox]')) box.checked = false;
    this.updateSelection();
  }

  private picked(input: HTMLInputElement): void {
    try {
      const files = fromInput(input);
      if (files.length > 0) this.actions.upload(files, this.prefix);
    } catch (error) {
      this.announce(describeError(error));
    } finally {
      input.value = '';
    }
  }

  private onDragOver(event: DragEvent): void {
    if (!event.dataTransfer?.types.includes('Files')) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    this.element.classList.add('dropping');
  }

  private onDrop(event: DragEvent): void {
    this.element.classList.remove('dropping');
    if (!event.dataTransfer?.types.includes('Files')) return;
    event.preventDefault();
    const prefix = this.prefix;
    fromDrop(event.dataTransfer).then(
      (files) => {
        if (files.length > 0) this.actions.upload(files, prefix);
      },
      (error: unknown) => this.announce(describeError(error)),
    );
  }
}
