"""The SIP proxies (users and trunks). As of issue 2, ``role`` is a SIP endpoint that
answers OPTIONS on every transport; the stateful proxy engine replaces it in issue 5.
"""
