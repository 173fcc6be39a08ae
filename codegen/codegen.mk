# protoc-gen-minirpc: rules come with the plugin (issue 3).
