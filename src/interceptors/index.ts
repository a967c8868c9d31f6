import type { InterceptorType } from '../chain/interceptor-types';
import { auditInterceptorType } from './audit';
import { imagePolicyInterceptorType } from './image-policy';
import { metricsInterceptorType } from './metrics';
import { routingInterceptorType } from './routing';
import { tracingInterceptorType } from './tracing';

/** The interceptor types cri-proxy ships; the proxy and its commands know these and no others. */
export const builtinInterceptorTypes: readonly InterceptorType[] = [
  auditInterceptorType,
  imagePolicyInterceptorType,
  metricsInterceptorType,
  routingInterceptorType,
  tracingInterceptorType,
];
