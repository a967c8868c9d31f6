import { loadConfigFile } from '../config/load';
import { IMAGE_POLICY_TYPE, type ImagePolicyConfig } from '../interceptors/image-policy';
import { loadConfiguredPolicy, type PolicyTrust } from '../interceptors/image-policy/policy-file';
import type { CompiledPolicy } from '../policies/image-rules';
import { builtinTypes } from './builtin-types';

/** One image-policy interceptor of a proxy's configuration, its rules loaded as the proxy loads them. */
export interface ConfiguredPolicy {
  readonly name: string;
  readonly settings: ImagePolicyConfig;
  readonly policy: CompiledPolicy;
  readonly trust: PolicyTrust;
}

/** The image policies a configuration file sets up, in chain order. Throws what loading the file throws. */
export function configuredImagePolicies(file: string): ConfiguredPolicy[] {
  return loadConfigFile(file, builtinTypes())
    .interceptors.filter((entry) => entry.type === IMAGE_POLICY_TYPE)
    .map((entry) => {
      const settings = entry.config as ImagePolicyConfig;
      const { policy, trust } = loadConfiguredPolicy(settings);
      return { name: entry.name, settings, policy, trust };
    });
}
