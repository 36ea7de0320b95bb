import type { Share, ShareEntries } from '../../../client/agent/schemas';
import type { AgentClient } from '../agent';
import { h, replaceChildren, setText } from '../dom';
import { describeError } from '../errors';
import { formatBytes } from '../format';

/** Asks for the token `slip agent` printed; kept for this tab only. */
export class PairingDialog {
  readonly element: HTMLDialogElement;
  private readonly input = h('input', { id: 'pairing-token', name: 'pairing-token', type: 'text', autocomplete: 'off', spellcheck: 'false', required: true, pattern: '[A-Za-z0-9_\\-]{16,64}' });
  private readonly error = h('p', { class: 'error', role: 'alert' });

  constructor(private readonly onPair: (token: string) => Promise<boolean>) {
    const form = h(
      'form',
      { method: 'dialog', onsubmit: (e: Event) => void this.submit(e) },
      h('h2', { id: 'pairing-title' }, 'Pair with the Slipstream agent'),
      h('p', {}, 'The agent printed a pairing token when it started (', h('code', {}, 'npx slip agent'), '). Paste it here; it is kept for this tab only.'),
      h('div', { class: 'field' }, h('label', { for: 'pairing-token' }, 'Pairing token'), this.input),
      this.error,
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => this.element.close() }, 'Cancel'), h('button', { type: 'submit' }, 'Pair')),
    );
    this.element = h('dialog', { 'aria-labelledby': 'pairing-title' }, form);
  }

  show(): void {
    this.input.value = '';
    setText(this.error, '');
    this.element.showModal();
  }

  private async submit(event: Event): Promise<void> {
    event.preventDefault();
    const token = this.input.value.trim();
    if (!this.input.checkValidity()) {
      setText(this.error, 'A pairing token is 16 to 64 letters, digits, "-" or "_".');
      return;
    }
    try {
      if (await this.onPair(token)) this.element.close();
      else setText(this.error, 'The agent did not accept that token. Copy it again from the terminal where slip agent runs.');
    } catch (error) {
      setText(this.error, describeError(error));
    }
  }
}

/**
 * High speed uploads read files on this computer, which only the agent can: this picker browses the
 * folders the agent was told to share, and nothing else, and hands back a share and paths inside it.
 */
export class SharedFolderPicker {
  readonly element: HTMLDialogElement;
  private readonly sharesList = h('ul', { class: 'shares' });
  private readonly crumbs = h('p', { class: 'share-path' });
  private readonly entriesList = h('ul', { class: 'entries' });
  private readonly error = h('p', { class: 'error', role: 'alert' });
  private readonly confirm = h('button', { type: 'submit' }, 'Upload selected');
  private readonly destination = h('p', { class: 'note' });
  private share: Share | null = null;
  private readonly selected = new Set<string>();
  private onConfirm: ((share: string, paths: string[]) => void) | null = null;

  constructor(private readonly agent: AgentClient) {
    const form = h(
      'form',
      { method: 'dialog', onsubmit: (e: Event) => this.submit(e) },
      h('h2', { id: 'shared-title' }, 'Upload from shared folders'),
      this.destination,
      h('nav', { 'aria-label': 'Shared folders' }, this.sharesList),
      this.crumbs,
      this.entriesList,
      this.error,
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => this.element.close() }, 'Cancel'), this.confirm),
    );
    this.element = h('dialog', { class: 'shared', 'aria-labelledby': 'shared-title' }, form);
  }

  async show(destination: string, onConfirm: (share: string, paths: string[]) => void): Promise<void> {
    this.onConfirm = onConfirm;
    setText(this.destination, `Files and folders you select go to ${destination} at high speed. Only folders shared when the agent started (slip agent --share …) are listed.`);
    setText(this.error, '');
    this.element.showModal();
    try {
      const { shares } = await this.agent.shares();
      replaceChildren(this.sharesList, ...shares.map((s) => h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => void this.open(s, '') }, s.name))));
      // One share needs no switcher: the path line names it.
      this.sharesList.hidden = shares.length < 2;
      if (shares.length === 0) {
        replaceChildren(this.entriesList);
        setText(this.error, 'The agent shares no folder. Stop it and start it again with --share <folder>.');
        this.update();
        return;
      }
      await this.open(shares[0]!, '');
    } catch (error) {
      setText(this.error, describeError(error));
    }
  }

  private async open(share: Share, path: string): Promise<void> {
    this.share = share;
    this.selected.clear();
    for (const button of this.sharesList.querySelectorAll('button')) button.setAttribute('aria-current', String(button.textContent === share.name));
    let listing: ShareEntries;
    try {
      listing = await this.agent.entries(share.id, path);
    } catch (error) {
      setText(this.error, describeError(error));
      return;
    }
    setText(this.error, listing.truncated ? 'This folder holds more entries than can be shown; the first ones are listed.' : '');
    const parts = path === '' ? [] : path.split('/');
    replaceChildren(
      this.crumbs,
      h('button', { type: 'button', class: 'link', onclick: () => void this.open(share, '') }, share.name),
      ...parts.flatMap((part, i) => [' / ', h('button', { type: 'button', class: 'link', onclick: () => void this.open(share, parts.slice(0, i + 1).join('/')) }, part)]),
    );
    replaceChildren(
      this.entriesList,
      ...listing.entries.map((entry) => {
        const box = h('input', { type: 'checkbox', id: `entry-${entry.path}`, 'aria-label': `Select ${entry.name}` });
        box.addEventListener('change', () => {
          if (box.checked) this.selected.add(entry.path);
          else this.selected.delete(entry.path);
          this.update();
        });
        const label =
          entry.type === 'folder'
            ? h('button', { type: 'button', class: 'link', onclick: () => void this.open(share, entry.path) }, h('span', { class: 'icon folder', 'aria-hidden': 'true' }), `${entry.name}/`)
            : h('span', {}, h('span', { class: 'icon file', 'aria-hidden': 'true' }), entry.name);
        return h('li', {}, box, label, h('span', { class: 'size' }, entry.sizeBytes === null ? '' : formatBytes(entry.sizeBytes)));
      }),
    );
    if (listing.entries.length === 0) this.entriesList.append(h('li', { class: 'empty' }, 'This folder is empty.'));
    this.update();
  }

  private update(): void {
    this.confirm.disabled = this.selected.size === 0;
    setText(this.confirm, this.selected.size > 0 ? `Upload selected (${this.selected.size})` : 'Upload selected');
  }

  private submit(event: Event): void {
    event.preventDefault();
    if (!this.share || this.selected.size === 0 || !this.onConfirm) return;
    this.onConfirm(this.share.id, [...this.selected]);
    this.element.close();
  }
}
