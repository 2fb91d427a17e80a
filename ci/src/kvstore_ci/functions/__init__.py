"""The module's functions, one small module per family of stages.

=================  ==============================================================
``base``           what every family shares: images via the mirror, the executor,
                   environment files, argument types, the runner container
``build``          ``python-base``, ``build`` (a check), ``publish``, ``publish-to``
``checks``         ``lint`` and ``test`` (checks), ``ci`` (all checks at once)
``terraform``      ``terraform-plan``, ``terraform-apply``
``kubernetes``     ``kubeconfig``, ``helm-upgrade``; the smoke check, helm rollback
``argocd``         ``argocd-sync``
``gitops``         ``promote``, ``rollback``, ``affected``
``deploy``         ``deploy``, the application pipeline composed of the above
``monitoring``     ``deploy-monitoring``
=================  ==============================================================

Each family is a class; the module object ``kvstore_ci.main.KvstoreCi`` inherits them all,
so each function is an ordinary ``dagger call`` function written once. The families only
arrange containers and await them through the executor; the logic that runs inside them
lives in the plain modules beside this package. Nothing here imports the module object or
the plan.
"""
