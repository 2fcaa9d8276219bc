/**
 * The Firecracker-compatible REST API: a transport-free controller over the
 * Vmm, the HTTP/Unix-socket server, and the --config-file loader.
 */
export { ApiController, APP_NAME, DEFAULT_INSTANCE_ID, FIRECRACKER_DEFAULT_MEM_MIB, type ApiRequest, type ApiResponse, type ControllerOptions, type HttpMethod } from './controller.js';
export { ApiServer, claimSocketPath, DEFAULT_MAX_PAYLOAD_BYTES, MAX_SOCKET_PATH_BYTES, SocketError, type ApiServerOptions } from './server.js';
export { applyVmConfig, bootFromConfigFile, ConfigFileError } from './config-file.js';
export { ApiError, HTTP } from './errors.js';
export { METRICS_PERIOD_MS } from './metrics.js';
export type { DeviceConfigs } from './resources.js';
export * as models from './models.js';
