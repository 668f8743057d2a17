import { useState } from 'preact/hooks';
import { api, ApiError, session, type Me } from './api.ts';

export function Login({ onLogin }: { onLogin: (me: Me) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string>();
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const me = await api.me(token.trim());
      session.token = token.trim();
      onLogin(me);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'This token is unknown or revoked.' : (err as Error).message);
    }
  };
  return (
    <form class="login" onSubmit={submit}>
      <h1>dicomflow</h1>
      <label>
        API token
        <input
          type="password"
          name="token"
          autocomplete="off"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          placeholder="dft_…"
        />
      </label>
      <button type="submit" disabled={token.trim() === ''}>
        Log in
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <p class="hint">
        An administrator makes tokens with <code>dicomflow token create --user NAME</code>; the first one is in{' '}
        <code>data/admin-token</code>.
      </p>
    </form>
  );
}
