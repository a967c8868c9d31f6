import { InterceptorTypes } from '../chain/interceptor-types';
import { builtinInterceptorTypes } from '../interceptors';

/** The interceptor types every command validates configurations against (built once, on first use). */
let types: InterceptorTypes | undefined;
export function builtinTypes(): InterceptorTypes {
  return (types ??= new InterceptorTypes(builtinInterceptorTypes));
}
