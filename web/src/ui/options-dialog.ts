import { maxRateKbps, type BucketPreferences, type BucketPreferencesPatch } from '../../../contracts';
import { h, replaceChildren, setText } from '../dom';
import { describeError } from '../errors';
import { kbpsToMbps, mbpsToKbps } from '../format';

type Side = 'upload' | 'download';

interface SideFields {
  transport: HTMLSelectElement;
  target: HTMLInputElement;
  min: HTMLInputElement;
}

/**
 * The bucket's Transfer options (its transfer preferences on the service): default transport and
 * bandwidth for uploads and downloads. Everyone with read access sees them; only an admin key may save.
 */
export class TransferOptionsDialog {
  readonly element: HTMLDialogElement;
  private readonly fields: Record<Side, SideFields>;
  private readonly note = h('p', { class: 'note' });
  private readonly error = h('p', { class: 'error', role: 'alert' });
  private readonly save = h('button', { type: 'submit' }, 'Save');
  private readonly title = h('h2', { id: 'options-title' }, 'Transfer options');
  private bucket = '';

  constructor(private readonly onSave: (bucket: string, patch: BucketPreferencesPatch) => Promise<BucketPreferences>) {
    this.fields = { upload: this.side('upload'), download: this.side('download') };
    const form = h(
      'form',
      { method: 'dialog', onsubmit: (e: Event) => void this.submit(e) },
      this.title,
      this.note,
      this.fieldset('upload', 'Uploads'),
      this.fieldset('download', 'Downloads'),
      this.error,
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => this.element.close() }, 'Close'), this.save),
    );
    this.element = h('dialog', { class: 'options', 'aria-labelledby': 'options-title' }, form);
  }

  show(bucket: string, preferences: BucketPreferences, admin: boolean): void {
    this.bucket = bucket;
    setText(this.title, `Transfer options for ${bucket}`);
    for (const side of ['upload', 'download'] as const) {
      const p = preferences[side];
      const f = this.fields[side];
      f.transport.value = p.defaultTransport;
      f.target.value = String(kbpsToMbps(p.targetRateKbps));
      f.min.value = String(kbpsToMbps(p.minRateKbps));
      for (const input of [f.transport, f.target, f.min]) input.disabled = !admin;
    }
    replaceChildren(
      this.note,
      admin
        ? `Every new transfer in this bucket starts with these settings, from any client. Rate policy: ${preferences.ratePolicy}; HTTP fallback: ${preferences.httpFallback}.`
        : 'Only an admin key can change these. They apply to every new transfer in this bucket.',
    );
    this.save.hidden = !admin;
    setText(this.error, '');
    this.element.showModal();
  }

  private side(side: Side): SideFields {
    const id = (name: string) => `${side}-${name}`;
    const number = (name: string, min: number) =>
      h('input', { id: id(name), name: id(name), type: 'number', inputmode: 'decimal', min, max: kbpsToMbps(maxRateKbps), step: 'any', required: true });
    return {
      transport: h('select', { id: id('transport'), name: id('transport') }, h('option', { value: 'standard' }, 'Standard (HTTPS)'), h('option', { value: 'high-speed' }, 'High speed')),
      target: number('target', 0.001),
      min: number('min', 0),
    };
  }

  private fieldset(side: Side, legend: string): HTMLFieldSetElement {
    const f = this.fields[side];
    const row = (label: string, control: HTMLElement, unit?: string) =>
      h('div', { class: 'field' }, h('label', { for: control.id }, label), control, unit ? h('span', { class: 'unit' }, unit) : null);
    return h('fieldset', {}, h('legend', {}, legend), row('Default transport', f.transport), row('Target rate', f.target, 'Mbit/s'), row('Minimum rate', f.min, 'Mbit/s'));
  }

  private async submit(event: Event): Promise<void> {
    event.preventDefault();
    const patch: BucketPreferencesPatch = {};
    for (const side of ['upload', 'download'] as const) {
      const f = this.fields[side];
      const target = mbpsToKbps(Number(f.target.value));
      const min = mbpsToKbps(Number(f.min.value));
      if (!(target >= 1) || !(min >= 0) || min > target) {
        setText(this.error, `${side === 'upload' ? 'Uploads' : 'Downloads'}: the minimum rate must not be above the target rate, and the target must be at least 0.001 Mbit/s.`);
        f.min.focus();
        return;
      }
      patch[side] = { defaultTransport: f.transport.value === 'high-speed' ? 'high-speed' : 'standard', targetRateKbps: target, minRateKbps: min };
    }
    this.save.disabled = true;
    try {
      await this.onSave(this.bucket, patch);
      this.element.close();
    } catch (error) {
      setText(this.error, describeError(error));
    } finally {
      this.save.disabled = false;
    }
  }
}
