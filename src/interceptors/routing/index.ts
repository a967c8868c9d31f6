/**
 * `routing`: several runtimes behind one kubelet endpoint, looking like one runtime. The config is validated
 * (against the configured backends too); running it needs the data plane's call context, so `create` refuses.
 */
import { defineInterceptorType } from '../../config/interceptor-types';
import { routingBackendIssues, routingConfigSchema } from './config';

export const routingInterceptorType = defineInterceptorType({
  name: 'routing',
  schema: routingConfigSchema,
  checkBackends: routingBackendIssues,
  create: () => {
    throw new Error('routing is not wired yet: this build validates a routing config but cannot run it');
  },
});
