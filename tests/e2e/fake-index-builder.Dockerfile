# A stand-in for the data plane's `build-index` in the e2e cluster: ignores its arguments and
# leaves a build result in its termination message, exactly where the real one writes it.
FROM busybox:1.36
USER 65532:65532
ENTRYPOINT ["sh", "-c", "echo '{\"items\":1682,\"recall\":0.97,\"artifactUri\":\"s3://recsys-artifacts/movies/index/e2e\",\"buildSeconds\":1.0}' > /dev/termination-log", "fake-index-builder"]
