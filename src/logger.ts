import { type DestinationStream, type Logger, pino } from 'pino';

/**
 * pino, with every place a credential can sit censored: the Authorization and Cookie headers,
 * the `access_token` and `sig` query parameters, and share-link tokens in `/s/` paths.
 * Request lines use `redactUrl`, so a token never reaches a log line (tested).
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'pixgate' },
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

const SECRET_PARAMS = /([?&](?:access_token|sig)=)[^&#]*/gi;

export function redactUrl(url: string): string {
  return url.replace(SECRET_PARAMS, '$1[redacted]').replace(/^\/s\/[^/?#]+/, '/s/[redacted]');
}

export type { Logger };
