import { ConnectionError, DEFAULT_MAX_FRAME_SIZE, ErrorCode, MAX_FRAME_SIZE_LIMIT, MAX_WINDOW, Setting } from './frames';
import type { HpackEncoder } from './hpack-encoder';

/** The peer's settings as last received (RFC 9113 §6.5.2 defaults until then). */
export interface PeerSettings {
  maxConcurrentStreams: number;
  initialWindow: number;
  maxFrameSize: number;
  maxHeaderListSize: number;
}

/**
 * Applies a SETTINGS frame's entries (RFC 9113 §6.5.2) to what this side knows of its peer, checking each, and
 * returns the new SETTINGS_INITIAL_WINDOW_SIZE if the frame carried one (the last one counts: the caller adjusts
 * every stream once). Each entry costs work, so a frame may carry only `maxEntries` of them (ENHANCE_YOUR_CALM).
 */
export function applyPeerSettings(payload: Buffer, maxEntries: number, peer: PeerSettings, encoder: HpackEncoder): number | undefined {
  if (payload.length % 6 !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS payload is not a multiple of 6 bytes');
  if (payload.length / 6 > maxEntries) {
    throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `more than ${maxEntries} SETTINGS entries`, 'settingsEntries');
  }
  let initialWindow: number | undefined;
  for (let at = 0; at < payload.length; at += 6) {
    const value = payload.readUInt32BE(at + 2);
    switch (payload.readUInt16BE(at)) {
      case Setting.HEADER_TABLE_SIZE:
        encoder.setPeerTableSize(value);
        break;
      case Setting.ENABLE_PUSH:
        if (value > 1) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH must be 0 or 1');
        break;
      case Setting.MAX_CONCURRENT_STREAMS:
        peer.maxConcurrentStreams = value;
        break;
      case Setting.INITIAL_WINDOW_SIZE:
        if (value > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE too large');
        initialWindow = value;
        break;
      case Setting.MAX_FRAME_SIZE:
        if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) {
          throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
        }
        peer.maxFrameSize = value;
        break;
      case Setting.MAX_HEADER_LIST_SIZE:
        peer.maxHeaderListSize = value;
        break;
      default:
        // Unknown settings are ignored.
        break;
    }
  }
  return initialWindow;
}
