/**
 * The demo page of `pixgate dev` (served at `/`): sign in as a dev user, upload, see one's
 * library, change visibility, and view one image through every method side by side, with what
 * each one leaks. Built on the client library only; no framework.
 */
import { endSession, ImageLoadError, loadAsBlob, loadAsDataUri, startSession } from './pixgate-client.js';

interface ImageMeta {
  id: string;
  visibility: 'private' | 'preview' | 'public';
  width: number;
  height: number;
}

type MethodState = 'loading' | 'ok' | 'failed';

const state: { user: string | null; token: string | null; selected: string | null } = {
  user: null,
  token: null,
  selected: null,
};

// The service-worker frame asks its parent for the token (same origin).
(window as unknown as { pixgateDemo: { token(): string | null } }).pixgateDemo = { token: () => state.token };

const $ = <T extends HTMLElement>(selector: string) => document.querySelector(selector) as T;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  children: (Node | string)[] = [],
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

const getToken = () => state.token;
const bearer = (): Record<string, string> => (state.token ? { authorization: `Bearer ${state.token}` } : {});

async function signIn(user: string): Promise<void> {
  const response = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: user }),
  });
  if (!response.ok) throw new Error(`dev token: ${response.status}`);
  const { token } = (await response.json()) as { token: string };
  if (state.token) await endSession().catch(() => undefined);
  state.user = user;
  state.token = token;
  state.selected = null;
  // The cookie method's panel needs a session; rotation makes a fresh id for the new user.
  await startSession(token).catch(() => undefined);
  for (const button of document.querySelectorAll<HTMLButtonElement>('[data-user]')) {
    button.setAttribute('aria-pressed', String(button.dataset.user === user));
  }
  $('#whoami').textContent = `signed in as ${user}`;
  $<HTMLButtonElement>('#upload-button').disabled = false;
  $('#viewer').hidden = true;
  await showLibrary();
}

async function showLibrary(): Promise<void> {
  const library = $('#library');
  const response = await fetch('/v1/images?limit=50', { headers: bearer() });
  if (!response.ok) {
    library.replaceChildren(el('p', { class: 'muted' }, [`Could not list images (${response.status}).`]));
    return;
  }
  const { items } = (await response.json()) as { items: ImageMeta[] };
  if (items.length === 0) {
    library.replaceChildren(el('p', { class: 'muted' }, ['No images yet: upload one.']));
    return;
  }
  library.replaceChildren(...items.map(thumbnail));
}

function thumbnail(image: ImageMeta): HTMLElement {
  const img = el('img', { alt: `image ${image.id.slice(0, 6)}` });
  void loadAsBlob(img, `/v1/images/${image.id}?w=320&h=240&fit=cover`, getToken).catch(() => undefined);
  const view = el('button', { type: 'button', class: 'view', title: 'View by every method' }, [img]);
  const select = el('select', { 'aria-label': 'Visibility' }, [
    ...['private', 'preview', 'public'].map((value) =>
      el('option', value === image.visibility ? { value, selected: '' } : { value }, [value]),
    ),
  ]);
  select.addEventListener('change', () => {
    void fetch(`/v1/images/${image.id}`, {
      method: 'PATCH',
      headers: { ...bearer(), 'content-type': 'application/json' },
      body: JSON.stringify({ visibility: select.value }),
    });
  });
  const card = el('article', { class: 'thumb', 'data-id': image.id }, [
    view,
    el('div', { class: 'meta' }, [
      el('span', { class: 'muted' }, [`${image.width}×${image.height}`]),
      select,
    ]),
  ]);
  view.addEventListener('click', () => {
    for (const other of document.querySelectorAll('.thumb.selected')) other.classList.remove('selected');
    card.classList.add('selected');
    showMethods(image);
  });
  return card;
}

interface Method {
  readonly key: string;
  readonly title: string;
  readonly leaks: string;
  show(stage: HTMLElement, id: string, done: (state: MethodState, detail: string) => void): void;
}

const SIZE = 'w=360&h=270&fit=cover';

function imageInto(
  stage: HTMLElement,
  src: string,
  done: (state: MethodState, detail: string) => void,
): void {
  const img = el('img', { alt: '' });
  img.addEventListener('load', () => done('ok', `${img.naturalWidth}×${img.naturalHeight}`), { once: true });
  img.addEventListener('error', () => done('failed', 'refused'), { once: true });
  img.src = src;
  stage.replaceChildren(img);
}

function byScript(
  load: (img: HTMLImageElement, url: string) => Promise<void>,
): (stage: HTMLElement, id: string, done: (state: MethodState, detail: string) => void) => void {
  return (stage, id, done) => {
    const img = el('img', { alt: '' });
    stage.replaceChildren(img);
    load(img, `/v1/images/${id}?${SIZE}`).then(
      () => done('ok', `${img.naturalWidth}×${img.naturalHeight}`),
      (error: unknown) => done('failed', error instanceof ImageLoadError ? String(error.status) : 'error'),
    );
  };
}

/** Signed URLs and share links: the page (as the owner) asks for one, then shows it by plain URL. */
function capability(
  path: string,
  body: unknown,
  query = '',
): (stage: HTMLElement, id: string, done: (state: MethodState, detail: string) => void) => void {
  return (stage, id, done) => {
    fetch(`/v1/images/${id}/${path}`, {
      method: 'POST',
      headers: { ...bearer(), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
      .then(async (response) => {
        if (!response.ok) {
          done('failed', String(response.status));
          return;
        }
        const { url } = (await response.json()) as { url: string };
        imageInto(stage, query ? `${url}?${query}` : url, done);
      })
      .catch(() => done('failed', 'error'));
  };
}

const methods: Method[] = [
  {
    key: 'blob',
    title: 'Header + blob',
    leaks:
      'Nothing in URLs or logs: the token stays in script memory. The page keeps the bytes; needs img-src blob:.',
    show: byScript((img, url) => loadAsBlob(img, url, getToken)),
  },
  {
    key: 'query',
    title: 'Query parameter',
    leaks:
      'The token is in the URL: proxy logs, the Resource Timing API (every script on the page), history, "copy image address". Never cached.',
    show: (stage, id, done) =>
      imageInto(
        stage,
        `/v1/images/${id}?${SIZE}&access_token=${encodeURIComponent(state.token ?? '')}`,
        done,
      ),
  },
  {
    key: 'cookie',
    title: 'Session cookie',
    leaks:
      'An HttpOnly cookie; the token never reaches the browser again. Same site only; changes need the CSRF token. Cached privately.',
    show: (stage, id, done) => imageInto(stage, `/v1/images/${id}?${SIZE}`, done),
  },
  {
    key: 'data-uri',
    title: 'Data URI',
    leaks:
      'Like the header: nothing in URLs. About a third bigger and slower to decode; capped by PIXGATE_JSON_MAX_BYTES.',
    show: byScript((img, url) => loadAsDataUri(img, url, getToken)),
  },
  {
    key: 'service-worker',
    title: 'Service worker',
    leaks:
      'A plain <img src> once set up: the worker adds the header, the token stays in its memory. Needs HTTPS (or localhost).',
    show: (stage, id, done) => {
      const frame = el('iframe', {
        src: `/demo/sw/?id=${encodeURIComponent(id)}&${SIZE}`,
        title: 'service worker',
      });
      const onMessage = (event: MessageEvent) => {
        const data = event.data as { type?: string; ok?: boolean; detail?: string } | null;
        if (event.origin !== location.origin || event.source !== frame.contentWindow) return;
        if (data?.type !== 'pixgate-demo:sw') return;
        window.removeEventListener('message', onMessage);
        done(data.ok ? 'ok' : 'failed', data.detail ?? '');
      };
      window.addEventListener('message', onMessage);
      stage.replaceChildren(frame);
    },
  },
  {
    key: 'signed-url',
    title: 'Signed URL',
    leaks:
      'No token at all: the URL grants one variant until it expires, and can be cached publicly. Whoever has the URL sees the image.',
    show: capability('signed-urls', { transform: { w: 360, h: 270, fit: 'cover' }, ttlSeconds: 3600 }),
  },
  {
    key: 'share-link',
    title: 'Share link',
    leaks:
      'A /s/ link for anyone, with an expiry, a view budget and a maximum width; revocable at once. Never cached.',
    show: capability('links', { ttlSeconds: 86400, maxViews: 10, maxWidth: 360 }, SIZE),
  },
];

function showMethods(image: ImageMeta): void {
  const { id } = image;
  state.selected = id;
  $('#viewer').hidden = false;
  // No id on screen: the README's screenshot stays the same from one test run to the next.
  $('#viewer-id').textContent = `${image.width}×${image.height} original, shown at 360×270 by each method`;
  const cards = methods.map((method) => {
    const stage = el('div', { class: 'stage' });
    const status = el('span', { class: 'status' }, ['loading']);
    const card = el('article', { class: 'method', 'data-method': method.key, 'data-state': 'loading' }, [
      stage,
      el('div', { class: 'body' }, [
        el('h3', {}, [method.title, status]),
        el('p', { class: 'leaks' }, [el('strong', {}, ['Leaks: ']), method.leaks]),
      ]),
    ]);
    method.show(stage, id, (result, detail) => {
      card.dataset.state = result;
      status.textContent = result === 'ok' ? `loaded ${detail}` : detail;
      status.className = `status ${result === 'ok' ? 'ok' : result === 'failed' ? 'bad' : ''}`;
    });
    return card;
  });
  $('#methods').replaceChildren(...cards);
}

$<HTMLFormElement>('#upload-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const file = $<HTMLInputElement>('#file').files?.[0];
  if (!file || !state.token) return;
  const status = $('#upload-status');
  status.textContent = 'uploading…';
  const visibility = $<HTMLSelectElement>('#visibility').value;
  fetch(`/v1/images?visibility=${encodeURIComponent(visibility)}`, {
    method: 'POST',
    headers: { ...bearer(), 'content-type': file.type || 'application/octet-stream' },
    body: file,
  })
    .then(async (response) => {
      const body = (await response.json()) as Partial<ImageMeta> & { error?: { message: string } };
      status.textContent = response.ok
        ? `stored: ${body.width ?? '?'}×${body.height ?? '?'}, ${body.visibility ?? ''}`
        : `refused: ${body.error?.message ?? ''}`;
      await showLibrary();
    })
    .catch(() => {
      status.textContent = 'upload failed';
    });
});

for (const button of document.querySelectorAll<HTMLButtonElement>('[data-user]')) {
  button.addEventListener('click', () => {
    void signIn(button.dataset.user ?? '').catch((error: unknown) => {
      $('#whoami').textContent = `sign-in failed: ${String(error)}`;
    });
  });
}
