/** What this side of a connection announces in its SETTINGS, and enforces on the peer's frames. */
import { DEFAULT_WINDOW, Setting } from './frames';
import { settingsFrame, windowUpdateFrame } from './frame-writers';

/** What this side announces, and how it paces the peer. */
export interface LocalSettings {
  /** SETTINGS_INITIAL_WINDOW_SIZE: how much the peer may send on one stream before we credit it. */
  readonly streamWindow: number;
  /** The connection-level window we give the peer (raised from 65,535 with a WINDOW_UPDATE at start). */
  readonly connectionWindow: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE; larger header lists are refused. */
  readonly maxHeaderListBytes: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS, announced only when set (servers). */
  readonly maxConcurrentStreams?: number;
  /** CONTINUATION frames one header block may take; more end the connection (ENHANCE_YOUR_CALM). */
  readonly maxContinuationFrames?: number;
  /** Entries one SETTINGS frame may carry; more end the connection (ENHANCE_YOUR_CALM). */
  readonly maxSettingsEntries?: number;
  /** DATA, HEADERS and CONTINUATION frames in a row that carry nothing and end nothing; more end the connection. */
  readonly maxEmptyFrames?: number;
}

// What a side enforces unless its settings say otherwise (nghttp2 allows 8 CONTINUATION frames, 32 entries).
export const DEFAULT_MAX_CONTINUATION_FRAMES = 16;
export const DEFAULT_MAX_SETTINGS_ENTRIES = 32;
export const DEFAULT_MAX_EMPTY_FRAMES = 10;

/** Our SETTINGS frame (with `extra` entries) and the connection window raise, sent first on every connection. */
export function greetingFrames(local: LocalSettings, extra: readonly (readonly [number, number])[]): Buffer[] {
  const settings: (readonly [number, number])[] = [
    [Setting.INITIAL_WINDOW_SIZE, local.streamWindow],
    [Setting.MAX_HEADER_LIST_SIZE, local.maxHeaderListBytes],
    ...extra,
  ];
  if (local.maxConcurrentStreams !== undefined) settings.push([Setting.MAX_CONCURRENT_STREAMS, local.maxConcurrentStreams]);
  const frames = [settingsFrame(settings)];
  const raise = local.connectionWindow - DEFAULT_WINDOW;
  if (raise > 0) frames.push(windowUpdateFrame(0, raise));
  return frames;
}
