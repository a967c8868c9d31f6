/** `routing`: several runtimes behind one kubelet endpoint, looking like one runtime (docs/routing.md). */
import { defineInterceptorType } from '../../chain/interceptor-types';
import { routingBackendIssues, routingConfigSchema } from './config';
import { createRoutingInterceptor } from './interceptor';

export const routingInterceptorType = defineInterceptorType({
  name: 'routing',
  schema: routingConfigSchema,
  checkBackends: routingBackendIssues,
  // Routing decides where every call goes, and the image policy asks the backend it picked about image IDs.
  everyMethod: true,
  runsBefore: { 'image-policy': 'the image policy checks images on the backend routing picks' },
  endsCalls: 'answers some calls itself (lists, Status and events merged across runtimes, UpdateRuntimeConfig sent to each)',
  create: createRoutingInterceptor,
});
