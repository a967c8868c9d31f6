/** Importing this module registers every built-in interceptor type with the config registry. */
import './audit';
import './image-policy';
import './metrics';
import './routing';
import './tracing';
export {};
