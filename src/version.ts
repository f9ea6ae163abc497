// The version printed by `tugboat --version` and recorded in images we build.
export const TUGBOAT_VERSION = '0.1.0';
