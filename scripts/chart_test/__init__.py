"""Chart and packaging tests (pytest), run by `scripts/chart-test` inside target/tools/venv.

One module per concern: rendering and Kubernetes schemas, CRDs and examples, RBAC and
object references, consistency with the built binary, the Docker build context, shell
scripts and CI workflows, the kind end-to-end script, and the install docs.
"""
