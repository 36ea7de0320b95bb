import { objectKeyProblem, type BucketList, type BucketPreferences } from '../../contracts';
import { AgentClient, AgentTransfers, type AgentStatus } from './agent';
import { Api, ApiError } from './api';
import { byId, h, replaceChildren, setText } from './dom';
import { describeError } from './errors';
import type { PickedFile } from './pick';
import { loadConfig, rememberedTransport, rememberTransport, session, takeTokenFromLocation, type ConsoleConfig } from './settings';
import { pickDownloadFolder, saveWithBrowser, StandardDownload, type DownloadSelection } from './standard-download';
import { StandardUpload } from './standard-upload';
import { TransferStore, type Transport } from './transfers';
import { PairingDialog, SharedFolderPicker } from './ui/agent-dialogs';
import { ObjectBrowser } from './ui/browser';
import { TransfersPanel } from './ui/transfers-panel';
import { TransferOptionsDialog } from './ui/options-dialog';

type Direction = 'upload' | 'download';

const transportWords: Record<Transport, string> = { standard: 'Standard', 'high-speed': 'High speed' };

/** What a drop or pick is called in the transfers panel: the file, the folder, or how many. */
function nameOfPick(files: readonly PickedFile[]): string {
  if (files.length === 1) return files[0]!.path;
  const first = files[0]!.path.split('/')[0]!;
  const oneFolder = files.every((f) => f.path.startsWith(`${first}/`));
  return oneFolder ? `${first}/` : `${files.length} files`;
}

/** The console: sign-in, then a bucket's objects beside the transfers panel. */
class ConsoleApp {
  private api: Api | null = null;
  private buckets: BucketList['buckets'] = [];
  private bucket = '';
  private preferences: BucketPreferences | null = null;
  /** Why high speed cannot be used in this bucket (immutable, or unknown), if it cannot. */
  private highSpeedBlocked: string | null = null;
  private agentStatus: AgentStatus = { state: 'not-running' };
  private agentChecks = 0;
  /** The transport the user picked in this tab; otherwise the remembered one, else the bucket's defaults. */
  private choice: Transport | null = rememberedTransport();

  private readonly store = new TransferStore();
  private readonly main = byId<HTMLElement>('main');
  private readonly sessionBar = byId<HTMLElement>('session');
  private readonly announcer = byId<HTMLElement>('announcer');
  private readonly agent: AgentClient;
  private readonly agentTransfers: AgentTransfers;
  private readonly browser: ObjectBrowser;
  private readonly panel: TransfersPanel;
  private readonly optionsDialog: TransferOptionsDialog;
  private readonly pairingDialog: PairingDialog;
  private readonly sharedPicker: SharedFolderPicker;

  // The controls above the browser, built once.
  private readonly bucketSelect = h('select', { id: 'bucket', onchange: () => void this.openBucket(this.bucketSelect.value) });
  private readonly radios: Record<Transport, HTMLInputElement> = {
    standard: h('input', { type: 'radio', name: 'transport', id: 'transport-standard', value: 'standard', onchange: () => this.choose('standard') }),
    'high-speed': h('input', { type: 'radio', name: 'transport', id: 'transport-high-speed', value: 'high-speed', onchange: () => this.choose('high-speed') }),
  };
  private readonly remember = h('input', { type: 'checkbox', id: 'remember', onchange: () => this.rememberChanged() });
  private readonly transportNote = h('p', { class: 'note', id: 'transport-note' });
  private readonly agentNotice = h('div', { class: 'agent-notice', role: 'region', 'aria-label': 'Local agent', 'aria-live': 'polite' });
  private readonly notice = h('p', { class: 'notice', role: 'alert' });

  constructor(private readonly config: ConsoleConfig) {
    this.agent = new AgentClient(config.agentUrl, session.agentToken());
    this.agentTransfers = new AgentTransfers(this.agent, this.store, (message) => this.announce(message));
    this.browser = new ObjectBrowser(() => this.api!, {
      upload: (files, prefix) => this.uploadPicked(files, prefix),
      uploadShared: (prefix) => void this.uploadShared(prefix),
      download: (selection) => this.download(selection),
    }, (text) => this.announce(text));
    this.panel = new TransfersPanel(this.store, (text) => this.announce(text));
    this.optionsDialog = new TransferOptionsDialog((bucket, patch) => this.savePreferences(bucket, patch));
    this.pairingDialog = new PairingDialog((token) => this.pair(token));
    this.sharedPicker = new SharedFolderPicker(this.agent);
    document.body.append(this.optionsDialog.element, this.pairingDialog.element, this.sharedPicker.element);
    this.remember.checked = this.choice !== null;
    // Refresh the folder shown when an upload into it finishes.
    let finished = 0;
    this.store.subscribe(() => {
      const now = this.store.list().filter((v) => v.direction === 'upload' && v.state === 'completed').length;
      if (now > finished && this.api) void this.browser.load();
      finished = now;
    });
    window.addEventListener('focus', () => void this.checkAgent());
    const token = takeTokenFromLocation();
    if (token) this.pair(token).catch((error: unknown) => this.announce(describeError(error)));
  }

  async start(): Promise<void> {
    const key = session.apiKey();
    if (key) {
      const problem = await this.signIn(key);
      if (problem === null) return;
      session.setApiKey(null);
      this.showSignIn(problem);
      return;
    }
    this.showSignIn();
  }

  private announce(text: string): void {
    // Cleared first, so the same sentence twice is read twice.
    this.announcer.textContent = '';
    requestAnimationFrame(() => setText(this.announcer, text));
  }

  // ── Sign-in ────────────────────────────────────────────────────────────────────────────────────

  private showSignIn(message = ''): void {
    this.sessionBar.hidden = true;
    const input = h('input', { id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false', 'aria-describedby': 'api-key-help' });
    const error = h('p', { class: 'error', role: 'alert' }, message);
    const button = h('button', { type: 'submit' }, 'Sign in');
    const form = h(
      'form',
      {
        class: 'signin',
        'aria-labelledby': 'signin-title',
        onsubmit: (event: Event) => {
          event.preventDefault();
          button.disabled = true;
          setText(error, '');
          void this.signIn(input.value.trim()).then((problem) => {
            button.disabled = false;
            if (problem) {
              setText(error, problem);
              input.focus();
            }
          });
        },
      },
      h('h2', { id: 'signin-title' }, 'Sign in'),
      h('div', { class: 'field' }, h('label', { for: 'api-key' }, 'API key'), input),
      h('p', { id: 'api-key-help', class: 'note' }, 'Your Slipstream API key (sk_…). It is kept only while this tab is open. With ', h('code', {}, 'npm start'), ', the admin key is in .slipstream/credentials.json.'),
      error,
      button,
    );
    replaceChildren(this.main, form);
    input.focus();
  }

  /** Signs in with `key`; the problem in words if that did not work. */
  private async signIn(key: string): Promise<string | null> {
    const api = new Api(this.config.apiUrl, key);
    try {
      const { buckets } = await api.buckets();
      if (buckets.length === 0) return 'This API key may not use any bucket here.';
      this.api = api;
      this.buckets = buckets;
      session.setApiKey(key);
    } catch (error) {
      return error instanceof ApiError && error.status === 401 ? 'That API key was not accepted: it is wrong, expired or revoked.' : describeError(error);
    }
    this.showConsole();
    const remembered = session.bucket();
    await this.openBucket(this.buckets.some((b) => b.name === remembered) ? remembered! : this.buckets[0]!.name);
    return null;
  }

  private signOut(): void {
    session.setApiKey(null);
    session.setAgentToken(null);
    this.agent.setToken(null);
    this.api = null;
    this.showSignIn();
  }

  // ── The console ────────────────────────────────────────────────────────────────────────────────

  private showConsole(): void {
    replaceChildren(this.bucketSelect, ...this.buckets.map((b) => h('option', { value: b.name }, b.name)));
    replaceChildren(
      this.sessionBar,
      h('label', { for: 'bucket' }, 'Bucket'),
      this.bucketSelect,
      h('button', { type: 'button', class: 'secondary', onclick: () => this.signOut() }, 'Sign out'),
    );
    this.sessionBar.hidden = false;
    const controls = h(
      'section',
      { class: 'controls', 'aria-label': 'Transfer settings' },
      h(
        'fieldset',
        { class: 'transport', 'aria-describedby': 'transport-note' },
        h('legend', {}, 'Transport'),
        h('label', { for: 'transport-standard' }, this.radios.standard, ' Standard'),
        h('label', { for: 'transport-high-speed' }, this.radios['high-speed'], ' High speed'),
      ),
      h('label', { for: 'remember', class: 'remember' }, this.remember, ' Remember my browser preferences'),
      h('button', { type: 'button', class: 'secondary', onclick: () => this.showOptions() }, 'Transfer options'),
      this.transportNote,
    );
    replaceChildren(this.main, controls, this.agentNotice, this.notice, h('div', { class: 'layout' }, this.browser.element, this.panel.element));
    this.renderTransport();
  }

  private async openBucket(bucket: string): Promise<void> {
    const api = this.api!;
    this.bucket = bucket;
    this.bucketSelect.value = bucket;
    session.setBucket(bucket);
    setText(this.notice, '');
    this.preferences = null;
    this.highSpeedBlocked = null;
    const listing = this.browser.open(bucket);
    const [preferences, info] = await Promise.allSettled([api.preferences(bucket), api.connectionInfo(bucket)]);
    if (this.bucket !== bucket) return;
    if (preferences.status === 'fulfilled') this.preferences = preferences.value.preferences;
    else setText(this.notice, `The bucket's transfer options could not be read: ${describeError(preferences.reason)}`);
    if (info.status === 'rejected') {
      const error = info.reason;
      this.highSpeedBlocked =
        error instanceof ApiError && error.code === 'BucketImmutable'
          ? `High speed is unavailable: this bucket is immutable (S3 Object Lock). The service says: ${error.message}.`
          : `High speed is unavailable right now: ${describeError(error)}`;
    }
    this.renderTransport();
    await Promise.all([listing, this.checkAgent()]);
  }

  // ── Transport ──────────────────────────────────────────────────────────────────────────────────

  private transport(direction: Direction): Transport {
    return this.choice ?? this.preferences?.[direction].defaultTransport ?? 'standard';
  }

  private get highSpeedReady(): boolean {
    return this.highSpeedBlocked === null && this.agentStatus.state === 'ready';
  }

  private choose(transport: Transport): void {
    this.choice = transport;
    if (this.remember.checked) rememberTransport(transport);
    this.renderTransport();
    if (transport === 'high-speed') void this.checkAgent();
  }

  private rememberChanged(): void {
    // Ticking it keeps the transport shown now; unticking forgets what was kept (this tab keeps its choice).
    rememberTransport(this.remember.checked ? (this.choice ?? this.transport('upload')) : null);
    if (this.remember.checked) this.choice ??= this.transport('upload');
  }

  private renderTransport(): void {
    const upload = this.transport('upload');
    this.radios[upload].checked = true;
    this.radios['high-speed'].disabled = this.highSpeedBlocked !== null;
    const notes: string[] = [];
    if (this.highSpeedBlocked) notes.push(this.highSpeedBlocked);
    else if (this.choice === null && this.preferences) {
      notes.push(`Bucket defaults: uploads ${transportWords[this.preferences.upload.defaultTransport]}, downloads ${transportWords[this.preferences.download.defaultTransport]}.`);
    }
    if (upload === 'high-speed' && !this.highSpeedBlocked) notes.push('High speed uploads send files from the agent’s shared folders; files picked or dropped in the browser go by Standard.');
    setText(this.transportNote, notes.join(' '));
    this.renderAgent();
  }

  // ── The local agent ────────────────────────────────────────────────────────────────────────────

  private async checkAgent(): Promise<void> {
    if (!this.api) return;
    // Checks overlap (focus, a click, a bucket change): only the latest one's answer counts.
    const check = ++this.agentChecks;
    let status: AgentStatus;
    try {
      status = await this.agent.status();
    } catch (error) {
      status = { state: 'not-running' };
      this.announce(describeError(error));
    }
    if (check !== this.agentChecks) return;
    this.agentStatus = status;
    this.renderAgent();
  }

  private async pair(token: string): Promise<boolean> {
    this.agent.setToken(token);
    const status = await this.agent.status();
    if (status.state !== 'ready') {
      this.agent.setToken(session.agentToken());
      return false;
    }
    session.setAgentToken(token);
    this.agentChecks++;
    this.agentStatus = status;
    this.renderAgent();
    this.announce('Paired with the Slipstream agent.');
    return true;
  }

  private renderAgent(): void {
    this.browser.setHighSpeed(this.transport('upload') === 'high-speed' && this.highSpeedBlocked === null, this.highSpeedReady);
    const wanted = this.transport('upload') === 'high-speed' || this.transport('download') === 'high-speed';
    const el = this.agentNotice;
    el.dataset.state = this.agentStatus.state;
    if (this.highSpeedBlocked || !wanted) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    const useStandard = h('button', { type: 'button', onclick: () => this.choose('standard') }, 'Use Standard instead');
    const checkAgain = h('button', { type: 'button', class: 'secondary', onclick: () => void this.checkAgent() }, 'Check again');
    if (this.agentStatus.state === 'not-running') {
      replaceChildren(
        el,
        h('p', {}, h('strong', {}, 'High speed needs the Slipstream agent, which is not running on this computer. '), 'Install Node.js 20 or later, then in a terminal run:'),
        h('pre', {}, h('code', {}, 'npx slip agent --share <folder to upload from> --downloads <folder for downloads>')),
        h('p', {}, 'and pair this page with the token it prints. Until then, Standard transfers work in the browser.'),
        h('div', { class: 'row' }, useStandard, checkAgain),
      );
    } else if (this.agentStatus.state === 'not-paired') {
      replaceChildren(
        el,
        h('p', {}, h('strong', {}, 'The Slipstream agent is running but not paired with this page. '), 'Pair it with the token it printed, or open the pairing link it printed.'),
        h('div', { class: 'row' }, h('button', { type: 'button', onclick: () => this.pairingDialog.show() }, 'Pair with agent'), useStandard),
      );
    } else {
      replaceChildren(el, h('p', { class: 'ok' }, `Slipstream agent ready (${this.agentStatus.info.shares} shared folder${this.agentStatus.info.shares === 1 ? '' : 's'}).`));
    }
  }

  // ── Transfers ──────────────────────────────────────────────────────────────────────────────────

  /** Files from the browser's pickers or a drop: the page reads them itself, so they go by Standard. */
  private uploadPicked(files: PickedFile[], prefix: string): void {
    const items = files.map((f) => ({ file: f.file, key: prefix + f.path }));
    const bad = items.find((i) => objectKeyProblem(i.key));
    if (bad) {
      this.announce(`${bad.file.name} cannot be uploaded: its object key ${objectKeyProblem(bad.key)}.`);
      setText(this.notice, `Nothing was uploaded: "${bad.key.slice(0, 200)}" is not a usable object key (it ${objectKeyProblem(bad.key)}).`);
      return;
    }
    setText(this.notice, '');
    if (this.transport('upload') === 'high-speed') this.announce('Files from the browser go by Standard. For High speed, use Upload from shared folders.');
    new StandardUpload(this.api!, this.store, this.bucket, items, { name: nameOfPick(files), detail: `to ${this.bucket}/${prefix}` });
  }

  private async uploadShared(prefix: string): Promise<void> {
    if (!this.highSpeedReady) {
      await this.checkAgent();
      if (!this.highSpeedReady) {
        this.announce('High speed is not available: see the note about the agent.');
        return;
      }
    }
    const bucket = this.bucket;
    await this.sharedPicker.show(`${bucket}/${prefix}`, (share, paths) => {
      this.agent
        .start({ direction: 'upload', endpoint: this.config.apiUrl, apiKey: session.apiKey() ?? '', bucket, prefix, share, paths })
        .then(
          (transfer) => this.agentTransfers.track(transfer, `to ${bucket}/${prefix}`),
          (error: unknown) => setText(this.notice, `The agent could not start the upload: ${describeError(error)}`),
        );
    });
  }

  private download(selection: DownloadSelection): void {
    const count = selection.keys.length + selection.prefixes.length;
    const name = count === 1 ? (selection.keys[0]?.key ?? selection.prefixes[0]!).slice(selection.basePrefix.length) : `${count} items`;
    if (this.transport('download') === 'high-speed') {
      if (!this.highSpeedReady) {
        setText(this.notice, 'High speed downloads need the Slipstream agent (see above). Choose Standard to download in the browser.');
        return;
      }
      for (const key of [...selection.keys.map((k) => k.key), ...selection.prefixes]) {
        this.agent.start({ direction: 'download', endpoint: this.config.apiUrl, apiKey: session.apiKey() ?? '', bucket: selection.bucket, key }).then(
          (transfer) => this.agentTransfers.track(transfer, "into the agent's downloads folder"),
          (error: unknown) => setText(this.notice, `The agent could not start the download: ${describeError(error)}`),
        );
      }
      return;
    }
    // The folder picker needs the click's user activation: it is the first thing this handler does.
    pickDownloadFolder().then(
      (folder) => {
        if (folder) new StandardDownload(this.api!, this.store, selection, folder, name);
        else void saveWithBrowser(this.api!, this.store, selection, name);
      },
      (error: unknown) => {
        if (error instanceof DOMException && error.name === 'AbortError') return; // the user closed the picker
        setText(this.notice, describeError(error));
      },
    );
  }

  // ── Transfer options ───────────────────────────────────────────────────────────────────────────

  private showOptions(): void {
    if (!this.preferences) {
      this.announce("The bucket's transfer options are not loaded.");
      return;
    }
    const admin = this.buckets.find((b) => b.name === this.bucket)?.actions.includes('admin') ?? false;
    this.optionsDialog.show(this.bucket, this.preferences, admin);
  }

  private async savePreferences(bucket: string, patch: Parameters<Api['patchPreferences']>[1]): Promise<BucketPreferences> {
    const saved = await this.api!.patchPreferences(bucket, patch);
    if (this.bucket === bucket) {
      this.preferences = saved.preferences;
      this.renderTransport();
    }
    this.announce(`Transfer options for ${bucket} saved.`);
    return saved.preferences;
  }
}

loadConfig().then(
  (config) => new ConsoleApp(config).start(),
  (error: unknown) => {
    byId('main').textContent = `The console could not start: ${describeError(error)}`;
  },
);
