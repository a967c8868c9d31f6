/** Running the proxy: start, serve until SIGTERM/SIGINT, reload on SIGHUP. */
import { App } from '../app';
import { ConfigError, loadConfigFile, type ConfigOverrides } from '../config/load';
import { errorMessage } from '../errors';
import { notifyReadyOnceRuntimeAnswers, notifySystemd, socketFromSystemd } from '../lifecycle/systemd';
import { createLogger } from '../log';
import { builtinTypes } from './builtin-types';
import { ExitCode } from './exit-codes';

export async function runProxy(configFile: string | undefined, overrides: ConfigOverrides): Promise<number> {
  const load = () => loadConfigFile(configFile, builtinTypes(), overrides);
  let config;
  try {
    config = load();
  } catch (err) {
    process.stderr.write(`cri-proxy: ${errorMessage(err)}\n`);
    return err instanceof ConfigError ? ExitCode.INPUT_INVALID : ExitCode.FAILED;
  }
  let app: App;
  try {
    const log = createLogger(config.logLevel);
    app = await App.start(config, { log, types: builtinTypes(), listenFd: socketFromSystemd(config.listen.path, log) });
  } catch (err) {
    process.stderr.write(`cri-proxy: ${errorMessage(err)}\n`);
    return ExitCode.START_FAILED;
  }
  const stopped = new AbortController();
  void notifyReadyOnceRuntimeAnswers(app, app.log, stopped.signal);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      stopped.abort();
      void notifySystemd(['STOPPING=1'], app.log);
      app.log.info('signal received', { signal });
      app.stop().then(
        () => resolve(ExitCode.OK),
        (err: unknown) => {
          app.log.error('unclean stop', { error: errorMessage(err) });
          resolve(ExitCode.FAILED);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // reloadWith never rejects: it logs and counts whatever goes wrong, and keeps the running config.
    process.on('SIGHUP', () => void app.reloadWith(load));
  });
}
